import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createIgnoreMatcher, parseDockerignore, readDockerignore } from '../../src/dockerfile/dockerignore.ts'

describe('parseDockerignore', () => {
  it('drops comments and blank lines, trims, strips a leading / and cleans paths', () => {
    const text = '# comment\n\n  node_modules  \n/dist/\n!/keep//me/\n./a/../b\n  # not a comment\n'
    expect(parseDockerignore(text)).toEqual(['node_modules', 'dist', '!keep/me', 'b', '# not a comment'])
  })
})

describe('createIgnoreMatcher', () => {
  it.each([
    { name: 'plain name at the root', patterns: ['secret.txt'], path: 'secret.txt', ignored: true },
    { name: 'plain name is anchored at the root', patterns: ['secret.txt'], path: 'sub/secret.txt', ignored: false },
    { name: 'directory pattern excludes its contents', patterns: ['dist'], path: 'dist/js/app.js', ignored: true },
    { name: 'trailing slash is cleaned away', patterns: ['dist/'], path: 'dist/app.js', ignored: true },
    { name: 'leading slash is the root', patterns: ['/dist'], path: 'dist/app.js', ignored: true },
    { name: '* stays within a segment', patterns: ['*.log'], path: 'logs/a.log', ignored: false },
    { name: '* matches at the root', patterns: ['*.log'], path: 'a.log', ignored: true },
    { name: '*/x matches one level', patterns: ['*/temp*'], path: 'sub/temporary.txt', ignored: true },
    { name: '*/*/x two levels', patterns: ['*/*/temp*'], path: 'a/b/temp', ignored: true },
    { name: '*/*/x not one level', patterns: ['*/*/temp*'], path: 'a/temp', ignored: false },
    { name: '? is one character', patterns: ['temp?'], path: 'temp1', ignored: true },
    { name: '? is not a slash', patterns: ['a?b'], path: 'a/b', ignored: false },
    { name: '** any depth', patterns: ['**/*.go'], path: 'a/b/c/x.go', ignored: true },
    { name: '** zero depth', patterns: ['**/*.go'], path: 'x.go', ignored: true },
    { name: '** in the middle', patterns: ['a/**/z'], path: 'a/b/c/z', ignored: true },
    { name: '** in the middle, zero dirs', patterns: ['a/**/z'], path: 'a/z', ignored: true },
    { name: 'trailing ** matches below', patterns: ['a/**'], path: 'a/b/c', ignored: true },
    { name: 'character class', patterns: ['file[0-9].txt'], path: 'file7.txt', ignored: true },
    { name: 'negated class', patterns: ['file[^0-9].txt'], path: 'file7.txt', ignored: false },
    { name: 'escaped wildcard is literal', patterns: ['a\\*b'], path: 'a*b', ignored: true },
    { name: 'escaped wildcard does not glob', patterns: ['a\\*b'], path: 'axb', ignored: false },
    { name: 'dots are literal', patterns: ['a.b'], path: 'axb', ignored: false },
    { name: 'dotfiles are not implicitly excluded', patterns: [], path: '.env', ignored: false },
    { name: 'exception re-includes', patterns: ['*.md', '!README.md'], path: 'README.md', ignored: false },
    { name: 'last match wins (exclude after exception)', patterns: ['*.md', '!README*.md', 'README-secret.md'], path: 'README-secret.md', ignored: true },
    { name: 'last match wins (exception after exclude)', patterns: ['*.md', '!README*.md', 'README-secret.md'], path: 'README-public.md', ignored: false },
    { name: 'exception under an excluded dir', patterns: ['vendor', '!vendor/keep.txt'], path: 'vendor/keep.txt', ignored: false },
    { name: 'sibling of the exception stays excluded', patterns: ['vendor', '!vendor/keep.txt'], path: 'vendor/other.txt', ignored: true },
    { name: 'exception of a directory re-includes its contents', patterns: ['docs', '!docs/api'], path: 'docs/api/x.md', ignored: false },
    { name: 'everything but', patterns: ['*', '!src'], path: 'src/main.ts', ignored: false },
    { name: 'everything but (other file)', patterns: ['*', '!src'], path: 'package.json', ignored: true },
    { name: 'exclusion order matters: exception first has no effect', patterns: ['!keep.txt', '*.txt'], path: 'keep.txt', ignored: true },
  ])('$name', ({ patterns, path, ignored }) => {
    expect(createIgnoreMatcher(parseDockerignore(patterns.join('\n'))).ignores(path, false)).toBe(ignored)
  })

  it.each([
    { name: 'no exceptions: prune', patterns: ['vendor'], dir: 'vendor', may: false },
    { name: 'exception below the dir', patterns: ['vendor', '!vendor/keep.txt'], dir: 'vendor', may: true },
    { name: 'exception elsewhere', patterns: ['vendor', '!src/keep.txt'], dir: 'vendor', may: false },
    { name: 'exception with ** anywhere', patterns: ['vendor', '!**/*.keep'], dir: 'vendor', may: true },
    { name: 'exception for an ancestor', patterns: ['a/b', '!a'], dir: 'a/b', may: true },
    { name: 'exception with a wildcard segment', patterns: ['pkgs', '!pkgs/*/README.md'], dir: 'pkgs/one', may: true },
    { name: 'exception with a non-matching segment', patterns: ['pkgs', '!pkgs/x*/README.md'], dir: 'pkgs/one', may: false },
  ])('mayHaveIncludedChildren: $name', ({ patterns, dir, may }) => {
    expect(createIgnoreMatcher(patterns).mayHaveIncludedChildren(dir)).toBe(may)
  })

  it('rejects a bare "!"', () => {
    expect(() => createIgnoreMatcher(['!'])).toThrow(/illegal exclusion pattern/)
  })
})

describe('readDockerignore', () => {
  const dirs: string[] = []
  afterAll(async () => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))))

  it('reads <context>/.dockerignore', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dockerignore-'))
    dirs.push(dir)
    await writeFile(path.join(dir, '.dockerignore'), '\uFEFF# c\r\n*.log\r\n!keep.log\r\n')
    expect(await readDockerignore(dir)).toEqual(['*.log', '!keep.log'])
  })

  it('treats a missing file as no patterns', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dockerignore-'))
    dirs.push(dir)
    expect(await readDockerignore(dir)).toEqual([])
  })
})

describe('readDockerignore: which file', () => {
  it('<Dockerfile>.dockerignore beside the Dockerfile wins over the context one; the context one is the fallback', async () => {
    const { mkdtempSync, writeFileSync, mkdirSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const { readDockerignore } = await import('../../src/dockerfile/dockerignore.ts')
    const dir = mkdtempSync(join(tmpdir(), 'ignore-'))
    mkdirSync(join(dir, 'docker'))
    writeFileSync(join(dir, '.dockerignore'), 'from-context\n')
    expect(await readDockerignore(dir, join(dir, 'docker', 'app.Dockerfile'))).toEqual(['from-context'])
    writeFileSync(join(dir, 'docker', 'app.Dockerfile.dockerignore'), 'beside-dockerfile\n')
    expect(await readDockerignore(dir, join(dir, 'docker', 'app.Dockerfile'))).toEqual(['beside-dockerfile'])
    expect(await readDockerignore(join(dir, 'docker'))).toEqual([])
  })
})
