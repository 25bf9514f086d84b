/**
 * The context archive read back with a real tar reader (GNU tar): what is in it, how it is ordered and
 * owned, that two checkouts of the same tree give the same bytes, and that it streams in bounded memory.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import v8 from 'node:v8'
import vm from 'node:vm'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { contextArchive, tarSize, tarStream } from '../../src/providers/together/context-archive.ts'
import { readContextTree, type ContextTree } from '../../src/providers/together/context-tree.ts'

const temps: string[] = []
afterEach(() => {
  while (temps.length > 0) rmSync(temps.pop() as string, { recursive: true, force: true })
})

function tempDir(prefix = 'ctx-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  temps.push(dir)
  return dir
}

const LONG_NAME = `${'deep/'.repeat(12)}${'n'.repeat(90)}.txt`

/** A checkout: the same tree every time, with the given mtime on every path. */
function checkout(root: string, mtime: Date): { context: string; dockerfile: string } {
  const context = path.join(root, 'ctx')
  const files: Record<string, string> = {
    Dockerfile: 'FROM busybox\nCOPY . /app\n',
    '.dockerignore': 'secret.txt\nlogs\n!logs/keep.log\n',
    'app/main.sh': '#!/bin/sh\necho hi\n',
    'app/data.bin': 'x'.repeat(70_000),
    'secret.txt': 'never sent',
    'logs/a.log': 'ignored',
    'logs/keep.log': 'kept by an exception',
    'ünïcode/naïve.txt': 'non-ASCII name',
    [LONG_NAME]: 'long name',
  }
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(context, rel)), { recursive: true })
    writeFileSync(path.join(context, rel), content)
  }
  chmodSync(path.join(context, 'app/main.sh'), 0o755)
  mkdirSync(path.join(context, 'empty'))
  symlinkSync('main.sh', path.join(context, 'app/link-inside'))
  symlinkSync('../../outside.txt', path.join(context, 'app/link-outside'))
  symlinkSync('/etc/passwd', path.join(context, 'app/link-absolute'))
  writeFileSync(path.join(root, 'outside.txt'), 'outside the context')
  for (const rel of [...Object.keys(files), 'empty', 'app', 'logs', '.']) utimesSync(path.join(context, rel), mtime, mtime)
  return { context, dockerfile: path.join(context, 'Dockerfile') }
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const chunk of stream) parts.push(chunk)
  return Buffer.concat(parts)
}

function gnuTar(args: string[], input: Buffer): string {
  return execFileSync('tar', args, { input, encoding: 'utf8' })
}

describe('context tree', () => {
  it('keeps what .dockerignore keeps, empty directories, and links that stay inside', async () => {
    const { context, dockerfile } = checkout(tempDir(), new Date('2020-01-01'))
    const tree = await readContextTree(context, dockerfile)
    expect(tree.files.map((f) => f.relPath)).toEqual(
      ['.dockerignore', 'Dockerfile', 'app/data.bin', 'app/main.sh', LONG_NAME, 'logs/keep.log', 'ünïcode/naïve.txt'].sort(),
    )
    expect(tree.dirs.map((d) => d.relPath)).toContain('empty')
    expect(tree.dirs.map((d) => d.relPath)).toContain('logs')
    expect(tree.links).toEqual([{ relPath: 'app/link-inside', target: 'main.sh' }])
    expect(tree.skippedLinks.map((l) => l.relPath).sort()).toEqual(['app/link-absolute', 'app/link-outside'])
    expect(tree.dockerfile).toBe('Dockerfile')
  })

  it('reads <Dockerfile>.dockerignore instead of the context one, and always sends the Dockerfile', async () => {
    const { context, dockerfile } = checkout(tempDir(), new Date('2020-01-01'))
    writeFileSync(`${dockerfile}.dockerignore`, 'app\nDockerfile\n')
    const tree = await readContextTree(context, dockerfile)
    const names = tree.files.map((f) => f.relPath)
    expect(names).toContain('secret.txt')
    expect(names).toContain('Dockerfile')
    expect(names.some((name) => name.startsWith('app/'))).toBe(false)
  })

  it('sends a Dockerfile from outside the context under a name of its own', async () => {
    const root = tempDir()
    const { context } = checkout(root, new Date('2020-01-01'))
    const outside = path.join(root, 'build.Dockerfile')
    writeFileSync(outside, 'FROM busybox\n')
    const tree = await readContextTree(context, outside)
    expect(tree.dockerfile).toBe('Dockerfile.sandbox-action')
    const sent = tree.files.find((f) => f.relPath === tree.dockerfile)
    expect(sent?.absPath).toBe(outside)
  })
})

describe('context archive', () => {
  it('reads back with GNU tar: contents, modes, links, long and non-ASCII names, numeric owners 0 and mtime 0', async () => {
    const { context, dockerfile } = checkout(tempDir(), new Date('2021-06-01'))
    const tree = await readContextTree(context, dockerfile)
    const gz = await collect(contextArchive(tree, { compression: 6 }))
    const listing = gnuTar(['-tvz', '--numeric-owner', '--full-time', '-f', '-'], gz)
    for (const line of listing.trim().split('\n')) {
      expect(line).toMatch(/ 0\/0 /)
      expect(line).toContain('1970-01-01 00:00:00')
    }
    expect(listing).toContain(LONG_NAME)
    expect(listing).toMatch(/^lrwxrwxrwx .* app\/link-inside -> main\.sh$/m)
    expect(listing).not.toContain('link-outside')
    expect(listing).not.toContain('secret.txt')

    const out = tempDir('extract-')
    execFileSync('tar', ['-xz', '-C', out, '-f', '-'], { input: gz })
    expect(readFileSync(path.join(out, 'app/data.bin'), 'utf8')).toBe('x'.repeat(70_000))
    expect(readFileSync(path.join(out, LONG_NAME), 'utf8')).toBe('long name')
    expect(readFileSync(path.join(out, 'ünïcode/naïve.txt'), 'utf8')).toBe('non-ASCII name')
    expect(statSync(path.join(out, 'app/main.sh')).mode & 0o777).toBe(0o755)
    expect(readlinkSync(path.join(out, 'app/link-inside'))).toBe('main.sh')
    expect(statSync(path.join(out, 'empty')).isDirectory()).toBe(true)
    expect(readFileSync(path.join(out, 'logs/keep.log'), 'utf8')).toBe('kept by an exception')
  })

  it('gives byte-identical archives for two checkouts with different mtimes', async () => {
    const first = checkout(tempDir(), new Date('2019-03-04T05:06:07Z'))
    const second = checkout(tempDir(), new Date('2024-11-12T13:14:15Z'))
    const [a, b] = await Promise.all([readContextTree(first.context, first.dockerfile), readContextTree(second.context, second.dockerfile)])
    const gzA = await collect(contextArchive(a, { compression: 1 }))
    const gzB = await collect(contextArchive(b, { compression: 1 }))
    expect(gzA.equals(gzB)).toBe(true)
    // Adaptive compression depends on timing, so only the tar inside is the same.
    const adaptive = gunzipSync(await collect(contextArchive(a)))
    expect(adaptive.equals(gunzipSync(gzB))).toBe(true)
    expect(adaptive.byteLength).toBe(tarSize(a))
  })

  it('stores when the upload outpaces compression, and compresses when the upload is what is slow', async () => {
    const dir = tempDir()
    // Compressible text, large enough for several adaptation windows.
    for (let i = 0; i < 8; i++) writeFileSync(path.join(dir, `f${i}.txt`), 'the same words over and over, '.repeat(100_000))
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\n')
    const tree = await readContextTree(dir, path.join(dir, 'Dockerfile'))
    // A clock only the consumer moves: it spends 10 units per chunk (slow) or none (fast).
    const sizeWith = async (consumerCost: number): Promise<number> => {
      let clock = 0
      let size = 0
      const parts: Uint8Array[] = []
      for await (const chunk of contextArchive(tree, { now: () => clock })) {
        size += chunk.byteLength
        parts.push(chunk)
        clock += consumerCost
      }
      expect(gunzipSync(Buffer.concat(parts)).byteLength).toBe(tarSize(tree))
      return size
    }
    const fast = await sizeWith(0)
    const slow = await sizeWith(10)
    expect(fast).toBeGreaterThan(tarSize(tree) * 0.5)
    expect(slow).toBeLessThan(tarSize(tree) * 0.1)
  })

  it('puts every directory before what it holds', async () => {
    const { context, dockerfile } = checkout(tempDir(), new Date('2020-01-01'))
    const names = gnuTar(['-tz', '-f', '-'], await collect(contextArchive(await readContextTree(context, dockerfile), { compression: 1 }))).trim().split('\n')
    for (const [index, name] of names.entries()) {
      const parent = path.posix.dirname(name.replace(/\/$/, ''))
      if (parent !== '.') expect(names.indexOf(`${parent}/`)).toBeLessThan(index)
    }
  })

  it('streams a large context in bounded memory (stored blocks, so a buffered archive would show)', async () => {
    const dir = tempDir()
    const big = path.join(dir, 'big.bin')
    const chunk = randomBytes(1024 * 1024)
    const parts = 48
    for (let i = 0; i < parts; i++) writeFileSync(big, chunk, { flag: i === 0 ? 'w' : 'a' })
    const tree: ContextTree = {
      files: [{ relPath: 'big.bin', absPath: big, size: parts * chunk.byteLength, mode: 0o644, sha256: '' }],
      dirs: [],
      links: [],
      dockerfile: 'Dockerfile',
      skippedLinks: [],
    }
    // Live buffers only: collect garbage before each reading, or a lagging GC reads as growth.
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    gc()
    const baseline = process.memoryUsage().arrayBuffers
    let peak = 0
    let total = 0
    let nextReading = 0
    for await (const piece of contextArchive(tree, { compression: 0 })) {
      total += piece.byteLength
      if (total < nextReading) continue
      nextReading = total + 4 * 1024 * 1024
      gc()
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline)
    }
    expect(total).toBeGreaterThan(parts * chunk.byteLength)
    expect(peak).toBeLessThan(16 * 1024 * 1024)
  })

  it('fails when a file shrinks between listing and sending', async () => {
    const { context, dockerfile } = checkout(tempDir(), new Date('2020-01-01'))
    const tree = await readContextTree(context, dockerfile)
    writeFileSync(path.join(context, 'app/data.bin'), 'short now')
    await expect(collect(tarStream(tree))).rejects.toThrow(/app\/data\.bin changed while it was being sent/)
  })
})
