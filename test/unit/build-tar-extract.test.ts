/**
 * extractTar against archives made by GNU tar (pax format, owners, long names, links) and hostile
 * member names written by hand: nothing is ever created from a member's own name.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { cleanName, decompressed, extractTar, TarError } from '../../src/providers/contree/build/tar-extract.ts'

const sha = (text: string) => createHash('sha256').update(text).digest('hex')

function archive(format: 'pax' | 'gnu', gzip = false): Buffer {
  const dir = mkdtempSync(path.join(tmpdir(), 'tar-src-'))
  const long = `${'deep/'.repeat(30)}name.txt`
  mkdirSync(path.join(dir, 'app', path.dirname(long)), { recursive: true })
  writeFileSync(path.join(dir, 'app', 'run.sh'), 'echo hi\n', { mode: 0o755 })
  writeFileSync(path.join(dir, 'app', long), 'long\n')
  mkdirSync(path.join(dir, 'app', 'empty'), { mode: 0o700 })
  symlinkSync('run.sh', path.join(dir, 'app', 'link'))
  execFileSync('ln', [path.join(dir, 'app', 'run.sh'), path.join(dir, 'app', 'hard')])
  return execFileSync('tar', ['-c', `--format=${format}`, '--owner=1000', '--group=100', '--numeric-owner', ...(gzip ? ['-z'] : []), '-C', dir, 'app'])
}

describe('extractTar', () => {
  it.each(['pax', 'gnu'] as const)('reads files, dirs, links, long names and owners (%s)', async (format) => {
    const work = mkdtempSync(path.join(tmpdir(), 'tar-out-'))
    const entries = await extractTar(Readable.from([archive(format)]), work)
    const byName = new Map(entries.map((e) => [e.name, e]))
    expect(byName.get('app/run.sh')).toMatchObject({ type: 'file', mode: 0o755, uid: 1000, gid: 100, sha256: sha('echo hi\n') })
    expect(byName.get('app/empty')).toMatchObject({ type: 'dir', mode: 0o700 })
    expect(byName.get('app/link')).toMatchObject({ type: 'symlink', linkname: 'run.sh' })
    expect(byName.get('app/hard')).toMatchObject({ type: 'file', sha256: sha('echo hi\n') })
    expect(byName.get(`app/${'deep/'.repeat(30)}name.txt`)?.sha256).toBe(sha('long\n'))
    const file = byName.get('app/run.sh')?.localPath ?? ''
    expect(readFileSync(file, 'utf8')).toBe('echo hi\n')
    // Only numbered member files exist in the work directory, never the archive's own names.
    expect(readdirSync(work).every((name) => /^member-\d+$/.test(name))).toBe(true)
  })

  it('decompresses gzip', async () => {
    const bytes = archive('pax', true)
    const work = mkdtempSync(path.join(tmpdir(), 'tar-out-'))
    const entries = await extractTar(decompressed(bytes.subarray(0, 8), Readable.from([bytes])), work)
    expect(entries.some((e) => e.name === 'app/run.sh')).toBe(true)
  })

  it('refuses absolute and .. member names', () => {
    expect(() => cleanName('/etc/passwd')).toThrow(TarError)
    expect(() => cleanName('a/../../x')).toThrow(/outside the destination/)
    expect(cleanName('./a/b/')).toBe('a/b')
  })

  it('a truncated stream is an error', async () => {
    const bytes = archive('pax')
    const work = mkdtempSync(path.join(tmpdir(), 'tar-out-'))
    await expect(extractTar(Readable.from([bytes.subarray(0, 1000)]), work)).rejects.toThrow(/ended inside a member/)
  })
})
