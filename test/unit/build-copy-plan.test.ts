import { describe, expect, it } from 'vitest'
import type { ContextFile } from '../../src/build/context.ts'
import { CopyPlanError, parseChown, planCopy, urlDestination } from '../../src/build/copy-plan.ts'

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
    expect(Object.keys(planCopy({ keyword: 'COPY', sources, dest, workdir: '/work', files }))).toEqual(paths)
  })

  it.each([
    { name: 'several sources', sources: ['a', 'b'], dest: '/app' },
    { name: 'wildcard', sources: ['*.txt'], dest: '/data' },
  ])('$name need a dest ending in /', ({ sources, dest }) => {
    expect(() => planCopy({ keyword: 'COPY', sources, dest, workdir: '/', files: txts })).toThrow(
      'When using COPY with more than one source file, the destination must be a directory and end with a /',
    )
  })
})

describe('planCopy ownership and modes', () => {
  it.each([
    { name: 'defaults: root and the file mode', chown: undefined, chmod: undefined, mode: 0o644, expected: { mode: '0644', uid: 0, gid: 0 } },
    { name: 'executable keeps 0755', chown: undefined, chmod: undefined, mode: 0o755, expected: { mode: '0755', uid: 0, gid: 0 } },
    { name: 'setuid bits are kept', chown: undefined, chmod: undefined, mode: 0o4755, expected: { mode: '4755', uid: 0, gid: 0 } },
    { name: '--chmod overrides', chown: undefined, chmod: '755', mode: 0o644, expected: { mode: '0755', uid: 0, gid: 0 } },
    { name: '--chmod 4 digits', chown: undefined, chmod: '0600', mode: 0o644, expected: { mode: '0600', uid: 0, gid: 0 } },
    { name: '--chown uid only: gid = uid', chown: '1000', chmod: undefined, mode: 0o644, expected: { mode: '0644', uid: 1000, gid: 1000 } },
    { name: '--chown uid:gid', chown: '1000:50', chmod: undefined, mode: 0o644, expected: { mode: '0644', uid: 1000, gid: 50 } },
    { name: '--chown root', chown: 'root', chmod: undefined, mode: 0o644, expected: { mode: '0644', uid: 0, gid: 0 } },
    { name: '--chown root:root', chown: 'root:root', chmod: undefined, mode: 0o644, expected: { mode: '0644', uid: 0, gid: 0 } },
  ])('$name', ({ chown, chmod, mode, expected }) => {
    const placed = planCopy({
      keyword: 'COPY', sources: ['x'], dest: '/x', workdir: '/', files: [file('x', 'x', 'file', 'x', mode)],
      ...(chown !== undefined && { chown }), ...(chmod !== undefined && { chmod }),
    })
    expect(placed['/x']).toMatchObject(expected)
  })

  it.each([
    { name: 'user name', chown: 'www-data', message: /--chown="www-data": user "www-data" must be a numeric id \(or root\)/ },
    { name: 'group name', chown: '1000:staff', message: /group "staff" must be a numeric id/ },
    { name: 'empty', chown: '', message: /expected uid\[:gid\]/ },
    { name: 'too many parts', chown: '1:2:3', message: /expected uid\[:gid\]/ },
  ])('--chown rejects $name', ({ chown, message }) => {
    expect(() => parseChown(chown)).toThrow(CopyPlanError)
    expect(() => parseChown(chown)).toThrow(message)
  })

  it.each(['u+x', '888', '75', '07555'])('--chmod rejects %s', (chmod) => {
    expect(() => planCopy({ keyword: 'COPY', sources: ['x'], dest: '/x', workdir: '/', files: [], chmod })).toThrow(/expected an octal mode/)
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
