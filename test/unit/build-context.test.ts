import { createHash } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContextError, resolveSources, resolveTree, walkContext } from '../../src/dockerfile/context.ts'
import { createIgnoreMatcher } from '../../src/dockerfile/dockerignore.ts'
import { createFileHasher, type FileHasher } from '../../src/dockerfile/file-hasher.ts'

const sha = (text: string): string => createHash('sha256').update(text).digest('hex')

let base: string
let ctx: string
let outside: string

/** A hasher that records every path it is asked to read. */
function spyHasher(): FileHasher & { paths: string[] } {
  const inner = createFileHasher()
  const paths: string[] = []
  return {
    paths,
    hash(absPath) {
      paths.push(absPath)
      return inner.hash(absPath)
    },
  }
}

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'build-context-'))
  ctx = path.join(base, 'ctx')
  outside = path.join(base, 'outside')
  await mkdir(path.join(ctx, 'src/lib'), { recursive: true })
  await mkdir(path.join(ctx, 'docs'), { recursive: true })
  await mkdir(path.join(ctx, 'vendor'), { recursive: true })
  await mkdir(outside, { recursive: true })
  await writeFile(path.join(outside, 'secret.txt'), 'SECRET')
  await writeFile(path.join(ctx, 'a.txt'), 'A')
  await writeFile(path.join(ctx, 'b.txt'), 'B')
  await writeFile(path.join(ctx, '.env'), 'DOT')
  await writeFile(path.join(ctx, 'run.sh'), '#!/bin/sh\n')
  await chmod(path.join(ctx, 'run.sh'), 0o755)
  await writeFile(path.join(ctx, 'src/main.ts'), 'main')
  await writeFile(path.join(ctx, 'src/lib/util.ts'), 'util')
  await writeFile(path.join(ctx, 'docs/readme.md'), 'docs')
  await writeFile(path.join(ctx, 'vendor/keep.txt'), 'keep')
  await writeFile(path.join(ctx, 'vendor/drop.txt'), 'drop')
  // Links that stay inside.
  await symlink('a.txt', path.join(ctx, 'link-to-a'))
  await symlink('src', path.join(ctx, 'link-to-src'))
  await symlink('../main.ts', path.join(ctx, 'src/lib/up'))
  await symlink('../ctx/a.txt', path.join(ctx, 'out-and-back'))
  // Links that escape.
  await symlink(path.join(outside, 'secret.txt'), path.join(ctx, 'abs-out'))
  await symlink('../outside/secret.txt', path.join(ctx, 'rel-out'))
  await symlink('../outside', path.join(ctx, 'dir-out'))
  await symlink('rel-out', path.join(ctx, 'chain-1'))
  await symlink('chain-1', path.join(ctx, 'chain-2'))
  await symlink('src/../../outside/secret.txt', path.join(ctx, 'dotdot-out'))
  await symlink('loop-b', path.join(ctx, 'loop-a'))
  await symlink('loop-a', path.join(ctx, 'loop-b'))
})

afterAll(async () => {
  await rm(base, { recursive: true, force: true })
})

const none = createIgnoreMatcher([])

describe('resolveSources: escapes', () => {
  it.each([
    { name: 'parent path', source: '../outside/secret.txt', reason: /outside the build context/ },
    { name: 'bare ..', source: '..', reason: /outside the build context/ },
    { name: 'dir then two ups', source: 'src/../../outside/secret.txt', reason: /outside the build context/ },
    { name: 'absolute path', source: '/etc/passwd', reason: /absolute paths are not allowed/ },
    { name: 'absolute path into the context', source: '/ctx/a.txt', reason: /absolute paths are not allowed/ },
    { name: 'symlink file, absolute target outside', source: 'abs-out', reason: /symbolic link "abs-out" points outside/ },
    { name: 'symlink file, relative target outside', source: 'rel-out', reason: /symbolic link "rel-out" points outside/ },
    { name: 'symlinked directory outside', source: 'dir-out/secret.txt', reason: /symbolic link "dir-out" points outside/ },
    { name: 'symlinked directory outside, whole dir', source: 'dir-out', reason: /symbolic link "dir-out" points outside/ },
    { name: 'symlink chain ending outside', source: 'chain-2', reason: /symbolic link "rel-out" points outside/ },
    { name: 'symlink target with .. through a dir', source: 'dotdot-out', reason: /points outside/ },
    { name: 'symlink leaving and re-entering the context', source: 'out-and-back', reason: /symbolic link "out-and-back" points outside/ },
    { name: 'symlink loop', source: 'loop-a', reason: /too many levels of symbolic links/ },
    { name: 'wildcard matching an escaping link', source: 'rel-*', reason: /points outside/ },
  ])('$name ($source) throws ContextError and reads nothing outside', async ({ source, reason }) => {
    const hasher = spyHasher()
    const attempt = resolveSources(ctx, [source], none, { hasher })
    await expect(attempt).rejects.toBeInstanceOf(ContextError)
    await expect(resolveSources(ctx, [source], none, { hasher })).rejects.toThrow(reason)
    expect(hasher.paths.filter((p) => !p.startsWith(`${ctx}/`))).toEqual([])
  })

  it('names the source in the error', async () => {
    await expect(resolveSources(ctx, ['../x'], none)).rejects.toThrow('build context: source "../x": it points outside the build context ("..")')
  })

  it('a whole-context copy fails when a link inside escapes', async () => {
    const hasher = spyHasher()
    await expect(resolveSources(ctx, ['.'], none, { hasher })).rejects.toBeInstanceOf(ContextError)
    expect(hasher.paths.filter((p) => p.includes('outside'))).toEqual([])
  })

  it('an escaping link excluded by .dockerignore is never followed', async () => {
    const matcher = createIgnoreMatcher(['*-out', 'chain-*', 'loop-*', 'out-and-back'])
    const files = await resolveSources(ctx, ['.'], matcher)
    expect(files.map((file) => file.relPath)).not.toContain('rel-out')
  })
})

describe('resolveSources: files', () => {
  it('a single file', async () => {
    const [file, ...rest] = await resolveSources(ctx, ['a.txt'], none)
    expect(rest).toEqual([])
    expect(file).toMatchObject({ relPath: 'a.txt', absPath: path.join(ctx, 'a.txt'), size: 1, sha256: sha('A'), sourceKind: 'file', pathInSource: 'a.txt', archive: false })
  })

  it('keeps permission bits', async () => {
    const [file] = await resolveSources(ctx, ['run.sh'], none)
    expect(file?.mode).toBe(0o755)
  })

  it('a directory source lists its contents relative to the directory', async () => {
    const files = await resolveSources(ctx, ['src/'], none)
    expect(files.map((file) => [file.relPath, file.pathInSource, file.sourceKind])).toEqual([
      ['src/lib/up', 'lib/up', 'directory'],
      ['src/lib/util.ts', 'lib/util.ts', 'directory'],
      ['src/main.ts', 'main.ts', 'directory'],
    ])
  })

  it.each([
    { name: '*.txt', source: '*.txt', paths: ['a.txt', 'b.txt'] },
    { name: 'dir/*', source: 'src/*', paths: ['src/lib/up', 'src/lib/util.ts', 'src/main.ts'] },
    { name: 'wildcard in a middle segment', source: '*/readme.md', paths: ['docs/readme.md'] },
    { name: '? wildcard', source: '?.txt', paths: ['a.txt', 'b.txt'] },
    { name: 'class', source: '[a].txt', paths: ['a.txt'] },
    { name: '* matches dotfiles (Go filepath.Match)', source: '*env', paths: ['.env'] },
  ])('wildcards: $name', async ({ source, paths }) => {
    const files = await resolveSources(ctx, [source], none)
    expect(files.map((file) => file.relPath)).toEqual(paths)
  })

  it('a link inside the context is followed and copied under its own name', async () => {
    const files = await resolveSources(ctx, ['link-to-a', 'src/lib/up', 'link-to-src/main.ts'], none)
    expect(files.map((file) => [file.relPath, file.absPath, file.sha256])).toEqual([
      ['link-to-a', path.join(ctx, 'a.txt'), sha('A')],
      ['src/lib/up', path.join(ctx, 'src/main.ts'), sha('main')],
      ['link-to-src/main.ts', path.join(ctx, 'src/main.ts'), sha('main')],
    ])
  })

  it.each([
    { name: 'missing file', source: 'nope.txt', reason: /not found in the build context/ },
    { name: 'file excluded by .dockerignore', source: 'b.txt', reason: /excluded by \.dockerignore/ },
  ])('$name', async ({ source, reason }) => {
    await expect(resolveSources(ctx, [source], createIgnoreMatcher(['b.txt']))).rejects.toThrow(reason)
  })

  it('a wildcard that matches nothing is allowed, as BuildKit allows it (COPY yarn.lock* ./)', async () => {
    expect(await resolveSources(ctx, ['*.nothing', 'a.txt'], none)).toHaveLength(1)
    expect(await resolveSources(ctx, ['*.nothing'], none)).toEqual([])
  })

  it('resolveTree keeps links below a directory as links, and lists directories (empty ones too) with their modes', async () => {
    await mkdir(path.join(ctx, 'src/empty'), { mode: 0o700 })
    await chmod(path.join(ctx, 'src/empty'), 0o700)
    try {
      const tree = await resolveTree(ctx, ['src'], none)
      expect(tree.files.map((f) => f.pathInSource)).toEqual(['lib/util.ts', 'main.ts'])
      expect(tree.links).toEqual([{ relPath: 'src/lib/up', target: '../main.ts', source: 'src', pathInSource: 'lib/up' }])
      expect(tree.dirs.map((d) => [d.pathInSource, d.mode.toString(8)])).toEqual([['empty', '700'], ['lib', '755']])
      // A link named explicitly is followed, as Docker does.
      expect((await resolveTree(ctx, ['link-to-a'], none)).files.map((f) => f.sha256)).toEqual([sha('A')])
    } finally {
      await rm(path.join(ctx, 'src/empty'), { recursive: true })
    }
  })

  it('.dockerignore applies inside directory sources and wildcards', async () => {
    const matcher = createIgnoreMatcher(['**/util.ts', 'b.txt'])
    expect((await resolveSources(ctx, ['src'], matcher)).map((f) => f.relPath)).toEqual(['src/lib/up', 'src/main.ts'])
    expect((await resolveSources(ctx, ['*.txt'], matcher)).map((f) => f.relPath)).toEqual(['a.txt'])
  })

  it('an exception re-includes a file below an excluded directory', async () => {
    const matcher = createIgnoreMatcher(['vendor', '!vendor/keep.txt'])
    expect((await resolveSources(ctx, ['vendor'], matcher)).map((f) => f.relPath)).toEqual(['vendor/keep.txt'])
    expect((await resolveSources(ctx, ['vendor/keep.txt'], matcher)).map((f) => f.relPath)).toEqual(['vendor/keep.txt'])
  })
})

describe('walkContext', () => {
  it('lists every kept file, pruning ignored directories', async () => {
    const matcher = createIgnoreMatcher(['*-out', 'chain-*', 'loop-*', 'out-and-back', 'vendor', '!vendor/keep.txt', 'docs'])
    const files = await walkContext(ctx, matcher)
    expect(files.map((file) => file.relPath)).toEqual([
      '.env', 'a.txt', 'b.txt', 'link-to-a', 'link-to-src/lib/up', 'link-to-src/lib/util.ts', 'link-to-src/main.ts', 'run.sh',
      'src/lib/up', 'src/lib/util.ts', 'src/main.ts', 'vendor/keep.txt',
    ])
  })
})

describe('file hashing', () => {
  it('hashes large files by streaming, same digest as a one-shot hash', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7)
    const file = path.join(base, 'big.bin')
    await writeFile(file, big)
    const digest = await createFileHasher().hash(file)
    expect(digest.sha256).toBe(createHash('sha256').update(big).digest('hex'))
    expect(digest.size).toBe(big.length)
  })

  it('a changed file gets a new digest even with the same size and mtime', async () => {
    const file = path.join(base, 'same-size.txt')
    const hasher = createFileHasher()
    const when = new Date('2020-01-01T00:00:00Z')
    await writeFile(file, 'one')
    await utimes(file, when, when)
    const first = await hasher.hash(file)
    await writeFile(file, 'two')
    await utimes(file, when, when)
    const second = await hasher.hash(file)
    expect([first.sha256, second.sha256]).toEqual([sha('one'), sha('two')])
  })

  it('refuses a symlink as the final component', async () => {
    await expect(createFileHasher().hash(path.join(ctx, 'link-to-a'))).rejects.toThrow()
  })
})
