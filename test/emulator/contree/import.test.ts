import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildOciImage, buildOciIndex } from '../oci-image.ts'
import { pushMultiPlatformImage, pushOciImage, pushTestImage, registryAvailable, startRegistry } from '../registry.ts'
import { TEST_IMAGES, testImageTar } from '../test-images.ts'
import { startContreeEmulator, type ContreeEmulator } from './index.ts'
import { call, parseSse, readStream, spawn, waitTerminal } from './test-client.ts'

const sha = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`

/** A tiny OCI registry on loopback that demands the bearer-token dance (Basic u:p at the realm). */
async function startFakeRegistry(work: string) {
  const blobs = new Map<string, Buffer>()
  const manifests = new Map<string, { type: string; body: Buffer }>()
  const layer = (name: string, files: Record<string, string>) => {
    const dir = join(work, name)
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(dir, path, '..'), { recursive: true })
      writeFileSync(join(dir, path), content)
    }
    const tarball = join(work, `${name}.tar.gz`)
    execFileSync('tar', ['-czf', tarball, '-C', dir, '.'])
    const bytes = readFileSync(tarball)
    blobs.set(sha(bytes), bytes)
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(bytes), size: bytes.length }
  }
  // The first layer is the busybox test image, so the imported image can run something.
  const baseBytes = gzipSync(testImageTar('base'))
  blobs.set(sha(baseBytes), baseBytes)
  const baseLayer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(baseBytes), size: baseBytes.length }
  const lower = layer('lower', { 'hello.txt': 'hello from the registry\n', 'gone.txt': 'x', 'dir/old.txt': 'old' })
  const upper = layer('upper', { '.wh.gone.txt': '', 'dir/.wh..wh..opq': '', 'dir/new.txt': 'new' })
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin', 'FROM_CONFIG=1'], WorkingDir: '/dir' }, rootfs: { type: 'layers', diff_ids: [] } }),
  )
  blobs.set(sha(config), config)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [baseLayer, lower, upper],
    }),
  )
  const decoy = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }))
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(decoy), size: decoy.length, platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    }),
  )
  for (const body of [manifest, decoy]) manifests.set(sha(body), { type: 'application/vnd.oci.image.manifest.v1+json', body })
  manifests.set('v1', { type: 'application/vnd.oci.image.index.v1+json', body: index })
  manifests.set('single', { type: 'application/vnd.oci.image.manifest.v1+json', body: manifest })

  let port = 0
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://registry')
    if (url.pathname === '/token') {
      const ok = req.headers.authorization === `Basic ${Buffer.from('user:pw').toString('base64')}`
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' })
      return res.end(ok ? JSON.stringify({ token: 'tok123' }) : '{}')
    }
    if (req.headers.authorization !== 'Bearer tok123') {
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="fake",scope="repository:test/img:pull"`,
      })
      return res.end()
    }
    const m = /^\/v2\/test\/img\/(manifests|blobs)\/(.+)$/.exec(url.pathname)
    const found = m?.[1] === 'manifests' ? manifests.get(m[2] as string) : undefined
    if (found) {
      res.writeHead(200, { 'content-type': found.type, 'docker-content-digest': sha(found.body) })
      return res.end(found.body)
    }
    const blob = m?.[1] === 'blobs' ? blobs.get(m[2] as string) : undefined
    if (blob) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      return res.end(blob)
    }
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
  return { host: `127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

let emu: ContreeEmulator
let registry: Awaited<ReturnType<typeof startFakeRegistry>>
let work: string

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fake-registry-'))
  registry = await startFakeRegistry(work)
  emu = await startContreeEmulator({ log: () => undefined })
})
afterAll(async () => {
  await emu.close()
  await registry.close()
  rmSync(work, { recursive: true, force: true })
})

async function importImage(body: Record<string, unknown>) {
  const res = await call(emu.url, 'POST', '/v1/images/import', { body })
  expect(res.status).toBe(201)
  const op = res.json().uuid as string
  expect(res.headers.location).toBe(`/v1/operations/${op}`)
  return { op, record: await waitTerminal(emu.url, op) }
}

describe('ConTree emulator: image import from an OCI registry', () => {
  it('pulls through the bearer challenge, picks linux/amd64, applies whiteouts and tags the image', async () => {
    const url = `docker://${registry.host}/test/img:v1`
    const { op, record } = await importImage({
      registry: { url, credentials: { username: 'user', password: 'pw' } },
      tag: 'imported:v1',
    })
    expect(record).toMatchObject({ kind: 'image_import', status: 'SUCCESS', result: { tag: 'imported:v1' } })
    expect(record.metadata.registry).toEqual({ url, credentials: { username: 'user', password: '<MASKED>' } })
    const image = emu.images().find((i) => i.uuid === record.result_image_uuid)
    expect(image?.tag).toBe('imported:v1')
    expect(readFileSync(join(image!.dir, 'hello.txt'), 'utf8')).toBe('hello from the registry\n')
    expect(existsSync(join(image!.dir, 'gone.txt'))).toBe(false)
    expect(existsSync(join(image!.dir, 'dir/old.txt'))).toBe(false)
    expect(readFileSync(join(image!.dir, 'dir/new.txt'), 'utf8')).toBe('new')
    expect(existsSync(join(image!.dir, 'dir/.wh..wh..opq'))).toBe(false)

    const log = parseSse((await readStream(emu.url, `/v1/operations/${op}/events`)).text).frames
    expect(log[0]?.event).toBe('init')
    expect(log.at(-1)?.event).toBe('completion')
    expect(log.some((f) => f.event === 'stdout' && f.data.includes('pulling sha256:'))).toBe(true)

    const run = await spawn(emu.url, { image: 'tag:imported:v1', command: 'cat', args: ['/hello.txt'] })
    expect((await waitTerminal(emu.url, run)).metadata.result.stdout.value).toBe('hello from the registry\n')
    // Owners and modes come from the layers, as the sandbox sees them.
    const owners = await spawn(emu.url, { image: 'tag:imported:v1', command: 'stat -c "%n %u:%g %a" /home/app /tmp /root', shell: true })
    expect((await waitTerminal(emu.url, owners)).metadata.result.stdout.value).toBe('/home/app 1000:1000 755\n/tmp 0:0 1777\n/root 0:0 700\n')
    // The config is kept (for the emulator's users); a spawn does not apply it.
    expect(image?.config).toEqual({ Env: ['PATH=/bin', 'FROM_CONFIG=1'], WorkingDir: '/dir' })
    const env = await spawn(emu.url, { image: 'tag:imported:v1', command: 'echo "${FROM_CONFIG:-unset} $(pwd)"', shell: true })
    expect((await waitTerminal(emu.url, env)).metadata.result.stdout.value).toBe('unset /\n')

    // Same manifest again: a new operation that reuses the image; the tag stays with it.
    const again = await importImage({ registry: { url: `docker://${registry.host}/test/img:single`, credentials: { username: 'user', password: 'pw' } } })
    expect(again.op).not.toBe(op)
    expect(again.record.result_image_uuid).toBe(record.result_image_uuid)
  })

  it('fails with a helpful error for an unknown manifest or missing credentials', async () => {
    const unknown = await importImage({
      registry: { url: `docker://${registry.host}/test/img:nope`, credentials: { username: 'user', password: 'pw' } },
    })
    expect(unknown.record.status).toBe('FAILED')
    expect(unknown.record.error).toMatch(/manifest unknown/)
    const anonymous = await importImage({ registry: { url: `docker://${registry.host}/test/img:v1` } })
    expect(anonymous.record.status).toBe('FAILED')
    expect(anonymous.record.error).toMatch(/token request/)
    expect((await call(emu.url, 'POST', '/v1/images/import', { body: { registry: {} } })).status).toBe(400)
  })
})

describe.skipIf(!registryAvailable() && !process.env.CI)('ConTree emulator: catalogue images from the local OCI registry', () => {
  let real: Awaited<ReturnType<typeof startRegistry>>
  beforeAll(async () => {
    real = await startRegistry()
  })
  afterAll(async () => {
    await real?.close()
  })

  it('imports a catalogue image with its real config; the config works when the client applies it', async () => {
    await pushTestImage(real.url, 'catalogue/golang', '1.22', 'golang')
    const { record } = await importImage({ registry: { url: `docker://${real.host}/catalogue/golang:1.22` }, tag: 'golang:1.22' })
    expect(record.status).toBe('SUCCESS')
    const image = emu.images().find((i) => i.uuid === record.result_image_uuid)
    expect(image?.config).toEqual(TEST_IMAGES.golang.config)
    const config = TEST_IMAGES.golang.config
    const env = Object.fromEntries(config.Env.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]))
    const run = await spawn(emu.url, { image: 'tag:golang:1.22', command: 'go version; pwd; stat -c %a /go', shell: true, env, cwd: config.WorkingDir })
    expect((await waitTerminal(emu.url, run)).metadata.result.stdout.value).toBe('go version go1.22.5 linux/amd64\n/go\n1777\n')
  })

  it('picks linux/amd64 from a multi-platform index, and fails an index without it', async () => {
    const pushed = await pushMultiPlatformImage(real.url, 'catalogue/multi', 'v1', 'base')
    expect((pushed.manifest.manifests as Array<{ platform: { architecture: string } }>).map((m) => m.platform.architecture)).toEqual(['arm64', 'amd64'])
    const { record } = await importImage({ registry: { url: `docker://${real.host}/catalogue/multi:v1` } })
    const run = await spawn(emu.url, { image: record.result_image_uuid, command: 'cat', args: ['/etc/platform'] })
    expect((await waitTerminal(emu.url, run)).metadata.result.stdout.value).toBe('linux/amd64\n')

    const onlyOthers = await pushOnlyPlatforms(real.url, 'catalogue/armonly', 'others')
    const failed = await importImage({ registry: { url: `docker://${real.host}/catalogue/armonly:${onlyOthers}` } })
    expect(failed.record.status).toBe('FAILED')
    expect(failed.record.error).toMatch(/has no linux\/amd64 image \(it has: linux\/arm64, linux\/s390x\)/)
  })
})

/** Pushes an index listing only marker images of other platforms under `tag`; returns the tag. */
async function pushOnlyPlatforms(registryUrl: string, name: string, tag: string): Promise<string> {
  const images = [
    buildOciImage({ 'etc/platform': 'linux/arm64\n' }, { platform: { os: 'linux', architecture: 'arm64' } }),
    buildOciImage({ 'etc/platform': 'linux/s390x\n' }, { platform: { os: 'linux', architecture: 's390x' } }),
  ]
  for (const image of images) await pushOciImage(registryUrl, name, image.manifest.digest, image)
  const { index } = buildOciIndex(images)
  const response = await fetch(`${registryUrl}/v2/${name}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': index.mediaType }, body: index.bytes })
  await response.arrayBuffer()
  if (response.status !== 201) throw new Error(`pushing the index failed: ${response.status}`)
  return tag
}
