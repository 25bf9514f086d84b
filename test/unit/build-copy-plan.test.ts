import { describe, expect, it } from 'vitest'
import type { ContextFile } from '../../src/dockerfile/context.ts'
import { contextMode, CopyPlanError, parseChmod, parseChown, planCopy, urlDestination, type CopyRequest } from '../../src/providers/contree/build/copy-plan.ts'

const tree = (files: ContextFile[]): CopyRequest['tree'] => ({ files, dirs: [], links: [] })

function file(relPath: string, source: string, sourceKind: 'file' | 'directory', pathInSource: string, mode = 0o644): ContextFile {
  return { relPath, absPath: `/ctx/${relPath}`, size: 1, mode, sha256: 'f'.repeat(64), source, sourceKind, pathInSource, archive: false }
}

const appJs = file('app.js', 'app.js', 'file', 'app.js')
const srcDir = [file('src/a.ts', 'src', 'directory', 'a.ts'), file('src/lib/b.ts', 'src', 'directory', 'lib/b.ts')]
const txts = [file('a.txt', '*.txt', 'file', 'a.txt'), file('b.txt', '*.txt', 'file', 'b.txt')]

describe('planCopy destinations', () => {
  it.each([
    { name: 'single file, dest not ending in / is the file path', sources: ['app.js'], dest: '/srv/main.js', files: [appJs], paths: ['/srv/main.js'] },
    { name: 'single file, dest ending in / keeps the name', sources: ['app.js'], dest: '/srv/', files: [appJs], paths: ['/srv/app.js'] },
    { name: 'single file to the root', sources: ['app.js'], dest: '/', files: [appJs], paths: ['/app.js'] },
    { name: 'relative dest joins WORKDIR', sources: ['app.js'], dest: 'bin/app', files: [appJs], paths: ['/work/bin/app'] },
    { name: '"." is the WORKDIR directory', sources: ['app.js'], dest: '.', files: [appJs], paths: ['/work/app.js'] },
    { name: '"./" is the WORKDIR directory', sources: ['app.js'], dest: './', files: [appJs], paths: ['/work/app.js'] },
    { name: '"sub/." is a directory', sources: ['app.js'], dest: 'sub/.', files: [appJs], paths: ['/work/sub/app.js'] },
    { name: '.. in the dest is cleaned', sources: ['app.js'], dest: '../etc/', files: [appJs], paths: ['/etc/app.js'] },
    { name: '.. cannot climb above /', sources: ['app.js'], dest: '/../../x', files: [appJs], paths: ['/x'] },
    { name: 'directory copies its contents, not itself', sources: ['src'], dest: '/app', files: srcDir, paths: ['/app/a.ts', '/app/lib/b.ts'] },
    { name: 'directory with trailing slash dest', sources: ['src'], dest: '/app/', files: srcDir, paths: ['/app/a.ts', '/app/lib/b.ts'] },
    { name: 'wildcard into a directory', sources: ['*.txt'], dest: '/data/', files: txts, paths: ['/data/a.txt', '/data/b.txt'] },
    { name: 'several sources into a directory', sources: ['app.js', 'src'], dest: '/app/', files: [appJs, ...srcDir], paths: ['/app/app.js', '/app/a.ts', '/app/lib/b.ts'] },
  ])('$name', ({ sources, dest, files, paths }) => {
    expect(planCopy({ keyword: 'COPY', sources, dest, workdir: '/work', tree: tree(files) }).map((e) => e.path)).toEqual(paths)
  })

  it.each([
    { name: 'several sources', sources: ['a', 'b'], dest: '/app' },
    { name: 'wildcard', sources: ['*.txt'], dest: '/data' },
  ])('$name need a dest ending in /', ({ sources, dest }) => {
    expect(() => planCopy({ keyword: 'COPY', sources, dest, workdir: '/', tree: tree(txts) })).toThrow(
      'When using COPY with more than one source file, the destination must be a directory and end with a /',
    )
  })
})

describe('planCopy modes', () => {
  it.each([
    { name: 'the file mode', chmod: undefined, mode: 0o644, expected: 0o644 },
    { name: 'executable keeps 0755', chmod: undefined, mode: 0o755, expected: 0o755 },
    { name: 'setuid bits are kept', chmod: undefined, mode: 0o4755, expected: 0o4755 },
    { name: '--chmod overrides', chmod: 0o755, mode: 0o644, expected: 0o755 },
  ])('$name', ({ chmod, mode, expected }) => {
    const [entry] = planCopy({ keyword: 'COPY', sources: ['x'], dest: '/x', workdir: '/', tree: tree([file('x', 'x', 'file', 'x', mode)]), ...(chmod !== undefined && { chmod }), hostPlatform: 'linux' })
    expect(entry?.mode).toBe(expected)
  })

  it('a lone file carries the name it takes inside an existing directory; directories and links are placed too', () => {
    const entries = planCopy({
      keyword: 'COPY', sources: ['src'], dest: '/app', workdir: '/',
      tree: { files: srcDir, dirs: [{ relPath: 'src/lib', mode: 0o700, source: 'src', pathInSource: 'lib' }], links: [{ relPath: 'src/l', target: '../x', source: 'src', pathInSource: 'l' }] },
    })
    expect(entries.map((e) => [e.path, e.type, e.mode.toString(8)])).toEqual([
      ['/app/lib', 'dir', '700'], ['/app/a.ts', 'file', '644'], ['/app/lib/b.ts', 'file', '644'], ['/app/l', 'symlink', '777'],
    ])
    expect(planCopy({ keyword: 'COPY', sources: ['app.js'], dest: './src', workdir: '/w', tree: tree([appJs]) })[0]).toMatchObject({ path: '/w/src', intoDirName: 'app.js' })
  })

  it("Docker's Windows rule: group/other write dropped, every execute bit added", () => {
    expect(contextMode(0o666, 'win32')).toBe(0o755)
    expect(contextMode(0o444, 'win32')).toBe(0o555)
    expect(contextMode(0o644, 'linux')).toBe(0o644)
  })

  it.each([
    { name: 'empty', chown: '' },
    { name: 'too many parts', chown: '1:2:3' },
    { name: 'empty group', chown: 'app:' },
  ])('--chown rejects $name', ({ chown }) => {
    expect(() => parseChown(chown)).toThrow(CopyPlanError)
    expect(() => parseChown(chown)).toThrow(/expected user\[:group\]/)
  })

  it('--chown keeps names for the image to resolve', () => {
    expect(parseChown('node:node')).toBe('node:node')
  })

  it.each(['u+x', '888', '75', '07555'])('--chmod rejects %s', (chmod) => {
    expect(() => parseChmod(chmod)).toThrow(/expected an octal mode/)
  })
})

describe('urlDestination', () => {
  it.each([
    { name: 'dest directory takes the URL file name', url: 'https://e.com/d/tool.tar.gz?x=1', dest: '/opt/', path: '/opt/tool.tar.gz' },
    { name: 'dest file path', url: 'https://e.com/d/tool', dest: '/usr/bin/t', path: '/usr/bin/t' },
    { name: 'relative dest', url: 'https://e.com/a.txt', dest: '.', path: '/w/a.txt' },
    { name: 'percent-encoded name', url: 'https://e.com/my%20file', dest: '/d/', path: '/d/my file' },
  ])('$name', ({ url, dest, path }) => {
    expect(urlDestination(url, dest, '/w', false)).toBe(path)
  })

  it('needs a file name for a directory destination', () => {
    expect(() => urlDestination('https://e.com/', '/d/', '/', false)).toThrow(/cannot determine a file name/)
  })
})
