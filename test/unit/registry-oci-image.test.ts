/**
 * The in-process image builder behind pushImage: layers must be tars that real tools extract
 * exactly, and building twice must give identical bytes (hence identical digests).
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildOciImage, buildOciIndex, OCI_INDEX, OCI_MANIFEST } from '../emulator/oci-image.ts'
import type { TarFiles } from '../emulator/tar-writer.ts'

const splitName = `${'d'.repeat(90)}/${'f'.repeat(90)}.txt` // > 100 bytes: needs the ustar prefix
const paxName = `${'p'.repeat(120)}/${'q'.repeat(120)}/${'r'.repeat(40)}.txt` // > 256 bytes: needs pax

const FILES: TarFiles = {
  '/etc/motd': 'hello\n',
  'usr/local/bin/run': { content: '#!/bin/sh\necho run\n', mode: 0o755 },
  'opt/data.bin': new Uint8Array([0, 1, 2, 255]),
  'var/empty/': '',
  'usr/local/bin/alias': { type: 'symlink', target: 'run' },
  [splitName]: 'split',
  [paxName]: 'pax',
}

describe('buildOciImage', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oci-image-test-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('is deterministic', () => {
    const a = buildOciImage(FILES)
    const b = buildOciImage({ ...Object.fromEntries(Object.entries(FILES).reverse()) })
    expect(Buffer.from(a.layers[0]?.bytes ?? []).equals(Buffer.from(b.layers[0]?.bytes ?? []))).toBe(true)
    expect(a.manifest.digest).toBe(b.manifest.digest)
    expect(buildOciImage({ 'etc/motd': 'other\n' }).manifest.digest).not.toBe(a.manifest.digest)
  })

  it('describes the layers in config and manifest', () => {
    const image = buildOciImage(FILES, { extraLayers: [{ 'etc/extra': 'x' }], config: { Cmd: ['/bin/sh'] } })
    const config = JSON.parse(new TextDecoder().decode(image.config.bytes)) as {
      rootfs: { diff_ids: string[] }
      config: { Cmd: string[] }
    }
    expect(image.layers).toHaveLength(2)
    // diff_ids are digests of the uncompressed tars, layer digests of the gzip'ed ones.
    expect(config.rootfs.diff_ids).toEqual(image.layers.map((l) => `sha256:${createHash('sha256').update(gunzipSync(l.bytes)).digest('hex')}`))
    expect(config.config.Cmd).toEqual(['/bin/sh'])
    expect(image.manifestObject).toMatchObject({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { digest: image.config.digest, size: image.config.bytes.length },
      layers: image.layers.map((l) => ({ digest: l.digest, size: l.bytes.length })),
    })
  })

  it('produces a layer GNU tar extracts exactly (long names, modes, links, dirs)', async () => {
    const image = buildOciImage(FILES)
    const archive = join(dir, 'layer.tar.gz')
    await writeFile(archive, image.layers[0]?.bytes ?? new Uint8Array())
    const out = join(dir, 'root')
    await mkdir(out, { recursive: true })
    execFileSync('tar', ['-xzf', archive, '-C', out])

    expect(await readFile(join(out, 'etc/motd'), 'utf8')).toBe('hello\n')
    expect((await stat(join(out, 'usr/local/bin/run'))).mode & 0o777).toBe(0o755)
    expect((await stat(join(out, 'etc/motd'))).mode & 0o777).toBe(0o644)
    expect([...(await readFile(join(out, 'opt/data.bin')))]).toEqual([0, 1, 2, 255])
    expect((await stat(join(out, 'var/empty'))).isDirectory()).toBe(true)
    expect(await readlink(join(out, 'usr/local/bin/alias'))).toBe('run')
    expect(await readFile(join(out, splitName), 'utf8')).toBe('split')
    expect(await readFile(join(out, paxName), 'utf8')).toBe('pax')

    const listing = execFileSync('tar', ['-tzf', archive], { encoding: 'utf8' }).trim().split('\n')
    // Parents are listed before their children.
    expect(listing.indexOf('usr/')).toBeLessThan(listing.indexOf('usr/local/bin/run'))
  })

  it('records numeric owners and special mode bits, which GNU tar restores with --numeric-owner', () => {
    const image = buildOciImage({
      'tmp/': { mode: 0o1777 },
      'home/app/': { mode: 0o750, uid: 1000, gid: 1000 },
      'home/app/notes': { content: 'n', mode: 0o640, uid: 1000, gid: 100 },
      'usr/bin/tool': { content: 't', mode: 0o4755 },
    })
    const verbose = execFileSync('tar', ['-tvzf', '-', '--numeric-owner'], { input: image.layers[0]?.bytes, encoding: 'utf8' })
    const line = (name: string) => verbose.split('\n').find((entry) => entry.endsWith(` ${name}`)) ?? ''
    expect(line('tmp/')).toMatch(/^drwxrwxrwt 0\/0 /)
    expect(line('home/app/')).toMatch(/^drwxr-x--- 1000\/1000 /)
    expect(line('home/app/notes')).toMatch(/^-rw-r----- 1000\/100 /)
    expect(line('usr/bin/tool')).toMatch(/^-rwsr-xr-x 0\/0 /)
  })
})

describe('buildOciIndex', () => {
  it('lists one manifest per platform, with the platform of each image config', () => {
    const amd64 = buildOciImage({ 'etc/platform': 'amd64' }, { config: { WorkingDir: '/w', User: '1000' } })
    const arm64 = buildOciImage({ 'etc/platform': 'arm64' }, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } })
    const { index, indexObject } = buildOciIndex([amd64, arm64])
    expect(index.mediaType).toBe(OCI_INDEX)
    expect(indexObject.manifests).toEqual([
      { mediaType: OCI_MANIFEST, digest: amd64.manifest.digest, size: amd64.manifest.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: OCI_MANIFEST, digest: arm64.manifest.digest, size: arm64.manifest.bytes.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ])
    const config = JSON.parse(new TextDecoder().decode(arm64.config.bytes)) as Record<string, unknown>
    expect(config).toMatchObject({ os: 'linux', architecture: 'arm64', variant: 'v8' })
    const amd64Config = JSON.parse(new TextDecoder().decode(amd64.config.bytes)) as { config: Record<string, unknown> }
    expect(amd64Config.config).toEqual({ Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: '/w', User: '1000' })
  })
})
