/**
 * The inspect routes read images as the sandbox's root sees them: real owners and modes, symlinks
 * resolved inside the image, owner-only files readable. (The Dockerfile work reads /etc/passwd
 * through download and copies stage results through archive.)
 */
import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startContreeEmulator, type ContreeEmulator } from './index.ts'
import { call } from './test-client.ts'

let emu: ContreeEmulator
let base: string
let image: string

beforeAll(async () => {
  emu = await startContreeEmulator({ log: () => undefined })
  base = emu.url
  image = await emu.seedImage({
    image: 'base',
    files: {
      'root/.secret': { content: 'top secret\n', mode: 0o600 },
      'home/app/data/': { mode: 0o750, uid: 1000, gid: 1000 },
      'home/app/data/notes.txt': { content: 'notes\n', mode: 0o640, uid: 1000, gid: 1000 },
      'home/app/data/latest': { type: 'symlink', target: 'notes.txt', uid: 1000, gid: 1000 },
      'srv': { type: 'symlink', target: '/home/app/data' },
    },
  })
})
afterAll(async () => {
  await emu.close()
})

const inspect = (route: string, path: string, method: 'GET' | 'HEAD' = 'GET', extra = '') =>
  call(base, method, `/v1/inspect/${image}/${route}?path=${encodeURIComponent(path)}${extra}`)

describe('download', () => {
  it('answers the bytes of a file, owner-only ones too, following symlinks inside the image', async () => {
    const passwd = await inspect('download', '/etc/passwd')
    expect(passwd.status).toBe(200)
    expect(passwd.headers['content-type']).toBe('application/octet-stream')
    expect(passwd.body.toString()).toContain('app:x:1000:1000:app:/home/app:/bin/sh\n')
    expect((await inspect('download', '/root/.secret')).body.toString()).toBe('top secret\n')
    // /srv -> /home/app/data (absolute, so relative to the image root), latest -> notes.txt.
    expect((await inspect('download', '/srv/latest')).body.toString()).toBe('notes\n')
  })

  it('answers 404 for a missing path, 422 for a directory, and HEAD without a body', async () => {
    expect((await inspect('download', '/etc/nope')).status).toBe(404)
    expect((await inspect('download', '/etc/nope')).json().error).toBe('file not found')
    const directory = await inspect('download', '/etc')
    expect(directory.status).toBe(422)
    expect(directory.json().error).toBe('/etc is a directory')
    const head = await inspect('download', '/etc/passwd', 'HEAD')
    expect(head.status).toBe(200)
    expect(head.body.length).toBe(0)
    expect((await inspect('download', '/etc/nope', 'HEAD')).status).toBe(404)
  })
})

describe('list', () => {
  it('lists a directory with owners named from the image’s own passwd and group', async () => {
    const res = await inspect('list', '/srv')
    expect(res.status).toBe(200)
    const listing = res.json()
    expect(listing.path).toBe('/home/app/data')
    expect(listing.files).toEqual([
      expect.objectContaining({ path: 'latest', owner: 'app', group: 'app', uid: 1000, gid: 1000, is_symlink: true, is_regular: false, symlink_to: 'notes.txt' }),
      expect.objectContaining({ path: 'notes.txt', owner: 'app', uid: 1000, mode: 0o100640, size: 6, is_regular: true, is_dir: false, symlink_to: '' }),
    ])
    const root = (await inspect('list', '/')).json().files
    expect(root.find((f: { path: string }) => f.path === 'tmp')).toMatchObject({ owner: 'root', group: 'root', mode: 0o41777, is_dir: true })
  })

  it('answers ls -l-like text with text=1, 404 and 422 otherwise', async () => {
    const text = (await inspect('list', '/home/app/data', 'GET', '&text=1')).body.toString()
    expect(text).toMatch(/^lrwxrwxrwx 1 app app 9 \S+ \S+ latest -> notes\.txt\n-rw-r----- 1 app app 6 \S+ \S+ notes\.txt\n$/)
    expect((await inspect('list', '/nope')).status).toBe(404)
    expect((await inspect('list', '/etc/passwd')).status).toBe(422)
  })
})

describe('archive', () => {
  it('streams a PAX tar (chunked, gzip) with modes, numeric owners and symlinks, named from the root', async () => {
    const res = await inspect('archive', '/home/app')
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('application/x-tar')
    expect(res.headers['content-encoding']).toBe('gzip')
    expect(res.headers['transfer-encoding']).toBe('chunked')
    const listing = execFileSync('tar', ['-tvf', '-', '--numeric-owner'], { input: res.body, encoding: 'utf8' })
    const lines = listing.trim().split('\n').map((line) => line.replace(/ \d{4}-\d\d-\d\d \d\d:\d\d /, ' ').replace(/ +/g, ' '))
    expect(lines).toEqual([
      'drwxr-xr-x 1000/1000 0 home/app/',
      'drwxr-x--- 1000/1000 0 home/app/data/',
      'lrwxrwxrwx 1000/1000 0 home/app/data/latest -> notes.txt',
      '-rw-r----- 1000/1000 6 home/app/data/notes.txt',
    ])
    // PAX (POSIX.1-2001) headers carry the POSIX magic "ustar\0" + "00"; GNU format would say "ustar  \0".
    expect(res.body.includes(Buffer.from('ustar\u000000'))).toBe(true)
    expect(res.body.includes(Buffer.from('ustar  \u0000'))).toBe(false)
    const extract = execFileSync('tar', ['-xOf', '-', 'home/app/data/notes.txt'], { input: res.body, encoding: 'utf8' })
    expect(extract).toBe('notes\n')
  })

  it('writes numeric owners only: no names looked up on the emulator’s host', async () => {
    const res = await inspect('archive', '/root')
    // Without --numeric-owner on the reading side, names in the headers would show as root/root.
    const listing = execFileSync('tar', ['-tvf', '-'], { input: res.body, encoding: 'utf8' })
    expect(listing).toMatch(/^drwx------ 0\/0 /)
    expect(listing).toMatch(/\n-rw------- 0\/0 .* root\/\.secret\n$/)
  })

  it('answers 404 for a missing path, and HEAD 200/404', async () => {
    expect((await inspect('archive', '/nope')).status).toBe(404)
    expect((await inspect('archive', '/root', 'HEAD')).status).toBe(200)
    expect((await inspect('archive', '/nope', 'HEAD')).status).toBe(404)
  })
})
