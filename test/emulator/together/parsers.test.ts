import { mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTar } from '../tar-writer.ts'
import { keyValues, parseDockerfile, words } from './dockerfile.ts'
import { boundaryOf, MultipartError, parseMultipart } from './multipart.ts'
import { resolveInRoot } from './root-path.ts'
import { extractContext } from './tar-reader.ts'

let scratch: string
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'together-parsers-'))
})
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true })
})

function multipartBody(boundary: string, parts: Array<{ name: string; filename?: string; body: Buffer | string }>): Buffer {
  const chunks: Buffer[] = []
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename ? `; filename="${part.filename}"` : ''}`
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n\r\n`), Buffer.from(part.body), Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return Buffer.concat(chunks)
}

async function* inPieces(body: Buffer, size: (i: number) => number): AsyncGenerator<Buffer> {
  for (let offset = 0, i = 0; offset < body.length; i++) {
    const n = Math.max(1, size(i))
    yield body.subarray(offset, offset + n)
    offset += n
  }
}

async function parts(body: Buffer, boundary: string, size: (i: number) => number) {
  const out: Array<{ name: string; filename: string | null; body: Buffer }> = []
  await parseMultipart(inPieces(body, size), boundary, (info) => {
    const chunks: Buffer[] = []
    return {
      write: (chunk) => void chunks.push(Buffer.from(chunk)),
      end: () => void out.push({ name: info.name, filename: info.filename, body: Buffer.concat(chunks) }),
    }
  })
  return out
}

describe('multipart parser', () => {
  const boundary = 'xYzBoundary123'
  // A body that contains almost-delimiters: CRLF, dashes and the boundary without its leading CRLF.
  const tricky = Buffer.from(`line\r\n--xYzBoundary12 not it\r\n-- ${boundary} \r\n--`)
  const body = multipartBody(boundary, [
    { name: 'image_name', body: 'app:v1' },
    { name: 'context', filename: 'context.tar.gz', body: tricky },
    { name: 'empty', body: '' },
  ])

  it('gives the same parts whatever the chunking (one byte at a time included)', async () => {
    const expected = [
      { name: 'image_name', filename: null, body: Buffer.from('app:v1') },
      { name: 'context', filename: 'context.tar.gz', body: tricky },
      { name: 'empty', filename: null, body: Buffer.alloc(0) },
    ]
    expect(await parts(body, boundary, () => body.length)).toEqual(expected)
    expect(await parts(body, boundary, () => 1)).toEqual(expected)
    expect(await parts(body, boundary, (i) => (i * 7919) % 23)).toEqual(expected)
  })

  it('refuses a body without its closing delimiter, and part headers without a name', async () => {
    await expect(parts(body.subarray(0, body.length - 10), boundary, () => 5)).rejects.toThrow(MultipartError)
    const nameless = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--${boundary}--\r\n`)
    await expect(parts(nameless, boundary, () => 100)).rejects.toThrow('part without a name')
  })

  it('reads the boundary from the Content-Type, quoted or not', () => {
    expect(boundaryOf('multipart/form-data; boundary=abc')).toBe('abc')
    expect(boundaryOf('multipart/form-data; charset=utf-8; boundary="a b"')).toBe('a b')
    expect(boundaryOf('application/json')).toBeNull()
    expect(boundaryOf('multipart/form-data')).toBeNull()
  })
})

describe('context reader', () => {
  it('unpacks files, directories, symlinks and pax long names with their modes', async () => {
    const long = `${'deep/'.repeat(40)}file.txt`
    const archive = join(scratch, 'ok.tar.gz')
    await writeFile(
      archive,
      gzipSync(
        buildTar({
          'bin/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
          'link': { type: 'symlink', target: 'bin/run.sh' },
          [long]: 'long name',
        }),
      ),
    )
    const out = join(scratch, 'ok')
    await mkdir(out)
    expect(await extractContext(archive, out)).toEqual({ files: 3, bytes: 10 + 9 })
    expect(await readFile(join(out, long), 'utf8')).toBe('long name')
    expect(await readlink(join(out, 'link'))).toBe('bin/run.sh')
  })

  it('refuses to write through a symlink the archive itself made', async () => {
    const tar = Buffer.from(buildTar({ escape: { type: 'symlink', target: '/tmp' }, 'escapf/x': 'x' }))
    // Rename the second entry 'escapf/x' (its parent dir entry 'escapf' comes first) to go through 'escape'.
    for (let offset = 0; offset < tar.length; offset += 512) {
      const name = tar.subarray(offset, offset + 100).toString('latin1').replace(/\0.*$/s, '')
      if (name !== 'escapf/x') continue
      tar.write('escape/x', offset, 'latin1')
      tar.fill(0x20, offset + 148, offset + 156)
      let sum = 0
      for (let i = 0; i < 512; i++) sum += tar[offset + i] as number
      tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, offset + 148, 'latin1')
    }
    const archive = join(scratch, 'through.tar.gz')
    await writeFile(archive, gzipSync(tar))
    const out = join(scratch, 'through')
    await mkdir(out)
    await expect(extractContext(archive, out)).rejects.toThrow('writes through a symlink')
  })

  it('refuses a truncated archive and a broken checksum', async () => {
    const tar = Buffer.from(buildTar({ a: 'x'.repeat(2000) }))
    const truncated = join(scratch, 'short.tar.gz')
    await writeFile(truncated, gzipSync(tar.subarray(0, 1024)))
    await mkdir(join(scratch, 'short'))
    await expect(extractContext(truncated, join(scratch, 'short'))).rejects.toThrow('truncated')
    tar[0] = 'b'.charCodeAt(0)
    const corrupt = join(scratch, 'corrupt.tar.gz')
    await writeFile(corrupt, gzipSync(tar))
    await mkdir(join(scratch, 'corrupt'))
    await expect(extractContext(corrupt, join(scratch, 'corrupt'))).rejects.toThrow('bad checksum')
  })
})

describe('Dockerfile reading', () => {
  it('joins continuations, drops comments, takes flags and the exec form', () => {
    const parsed = parseDockerfile('# syntax=docker/dockerfile:1\nFROM busybox\n# note\nRUN echo a \\\n  # inside\n  && echo b\nCOPY --chown=1:2 --link a b /c/\nCMD ["sh", "-c", "x"]\n')
    expect(parsed.instructions.map((i) => i.keyword)).toEqual(['FROM', 'RUN', 'COPY', 'CMD'])
    expect(parsed.instructions[1]?.args).toBe('echo a   && echo b')
    expect([...(parsed.instructions[2]?.flags ?? [])]).toEqual([
      ['chown', '1:2'],
      ['link', 'true'],
    ])
    expect(parsed.instructions[3]?.json).toEqual(['sh', '-c', 'x'])
  })

  it('substitutes variables with defaults and alternatives, honouring quotes', () => {
    const vars: Record<string, string> = { A: 'one', EMPTY: '' }
    const lookup = (name: string) => vars[name]
    expect(words('$A ${A}x "${B:-two words}" \'$A\' ${EMPTY:-d} ${EMPTY-d} ${A:+set} \\$A', lookup, '\\')).toEqual([
      'one',
      'onex',
      'two words',
      '$A',
      'd',
      '',
      'set',
      '$A',
    ])
    const env = parseDockerfile('ENV X=1 Y="a b" Z=$A\n').instructions[0]
    expect(keyValues(env!, lookup, '\\')).toEqual([
      ['X', '1'],
      ['Y', 'a b'],
      ['Z', 'one'],
    ])
    const legacy = parseDockerfile('ENV GREETING hello there\n').instructions[0]
    expect(keyValues(legacy!, lookup, '\\')).toEqual([['GREETING', 'hello there']])
  })
})

describe('paths inside a root', () => {
  it('follows links as a chrooted process would and never leaves the root', async () => {
    const root = join(scratch, 'root')
    await mkdir(join(root, 'usr/bin'), { recursive: true })
    await symlink('usr/bin', join(root, 'bin'))
    await symlink('/etc', join(root, 'etc-link'))
    await symlink('../../..', join(root, 'usr/bin/up'))
    expect((await resolveInRoot(root, '/bin/sh', { followLast: true })).hostPath).toBe(join(root, 'usr/bin/sh'))
    expect((await resolveInRoot(root, '/etc-link/passwd', { followLast: true, createDirs: true })).hostPath).toBe(join(root, 'etc/passwd'))
    expect((await resolveInRoot(root, '/usr/bin/up/usr/bin/up/x', { followLast: true })).hostPath).toBe(join(root, 'x'))
    expect((await resolveInRoot(root, '/../../x', { followLast: true })).rootPath).toBe('/x')
    expect((await resolveInRoot(root, '/bin', { followLast: false })).hostPath).toBe(join(root, 'bin'))
    await expect(resolveInRoot(root, '/missing/x', { followLast: true })).rejects.toThrow('no such file or directory')
  })
})
