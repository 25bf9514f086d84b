/**
 * A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution) on loopback with
 * its own config and temp storage, plus pushing images over the distribution API (no Docker
 * needed): small file images, the catalogue images of test-images.ts with their configs, and
 * multi-platform indexes.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildOciImage, buildOciIndex, type Blob, type OciImage, type OciImageOptions, type Platform } from './oci-image.ts'
import { findExecutable } from './shared/find-executable.ts'
import type { TarFiles } from './tar-writer.ts'
import { platformMarker, SERVICE_PLATFORM, testImageConfig, testImageTar, type TestImageName } from './test-images.ts'

const BINARY = 'docker-registry'
const INSTALL_HINT = `The '${BINARY}' binary is not installed; install it with: sudo apt-get update && sudo apt-get install -y docker-registry`
const STARTUP_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 5_000

export interface RunningRegistry {
  /** e.g. `http://127.0.0.1:40123` (no trailing slash). */
  url: string
  /** e.g. `127.0.0.1:40123`, the registry part of an image reference. */
  host: string
  pid: number
  close(): Promise<void>
}

export function registryAvailable(): boolean {
  return findBinary() !== undefined
}

function findBinary(): string | undefined {
  return findExecutable(BINARY, process.env['PATH'] ?? '')
}

export async function startRegistry(): Promise<RunningRegistry> {
  const binary = findBinary()
  if (binary === undefined) throw new Error(INSTALL_HINT)

  const dir = await mkdtemp(join(tmpdir(), 'test-registry-'))
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const configPath = join(dir, 'config.yml')
  await writeFile(
    configPath,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${host}`,
      '',
    ].join('\n'),
  )

  const child = spawn(binary, ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => {
    // Keep only the tail: enough to explain a failed start.
    stderr = (stderr + chunk).slice(-4000)
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const cleanup = async (): Promise<void> => {
    await stopChild(child, exited)
    await rm(dir, { recursive: true, force: true })
  }

  const url = `http://${host}`
  try {
    await waitUntilReady(url, exited, () => stderr)
  } catch (error) {
    await cleanup()
    throw error
  }
  if (child.pid === undefined) throw new Error('docker-registry started without a pid')
  let closed: Promise<void> | undefined
  return {
    url,
    host,
    pid: child.pid,
    close: () => (closed ??= cleanup()),
  }
}

async function waitUntilReady(url: string, exited: Promise<number | null>, stderr: () => string): Promise<void> {
  let exitCode: number | null | undefined
  void exited.then((code) => {
    exitCode = code
  })
  const deadline = Date.now() + STARTUP_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`docker-registry exited (code ${exitCode}) before it was ready:\n${stderr()}`)
    try {
      const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) })
      await response.arrayBuffer()
      if (response.status === 200) return
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`docker-registry did not answer GET ${url}/v2/ within ${STARTUP_TIMEOUT_MS / 1000} s:\n${stderr()}`)
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const pid = child.pid
  process.kill(pid, 'SIGTERM')
  const timer = setTimeout(() => {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }, STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

/** Asks the kernel for a free loopback port; the registry binds it a moment later. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

export interface PushedImage {
  /** Manifest digest as the registry reports it (Docker-Content-Digest); for an index, the index's. */
  digest: string
  manifest: Record<string, unknown>
  /** `host/name:tag` for the registry given, ready for parseReference. */
  reference: string
}

export interface PushImageOptions extends OciImageOptions {
  /**
   * A catalogue image (test-images.ts) the files go on top of, as a second layer: its tree is the
   * first layer and its config is the starting point `config` is merged over. Without it the image
   * holds only `files` (no shell, no tools).
   */
  base?: TestImageName
}

/**
 * Pushes a one-platform OCI image built from `files` (see tar-writer.ts for the accepted shapes)
 * to `registryUrl` as `name:tag`. The same files and options always give the same digest.
 */
export async function pushImage(
  registryUrl: string,
  name: string,
  tag: string,
  files: TarFiles,
  opts: PushImageOptions = {},
): Promise<PushedImage> {
  const { base, ...imageOptions } = opts
  const image = base
    ? buildOciImage(testImageTar(base), {
        ...imageOptions,
        extraLayers: [files, ...(imageOptions.extraLayers ?? [])],
        config: { ...testImageConfig(base), ...imageOptions.config },
      })
    : buildOciImage(files, imageOptions)
  return pushOciImage(registryUrl, name, tag, image)
}

/** Pushes a catalogue image (test-images.ts) with its real config, as `name:tag`. */
export function pushTestImage(registryUrl: string, name: string, tag: string, image: TestImageName): Promise<PushedImage> {
  return pushOciImage(registryUrl, name, tag, buildOciImage(testImageTar(image), { config: testImageConfig(image), platform: SERVICE_PLATFORM }))
}

/**
 * Pushes an image index under `name:tag`: the catalogue image for the service's platform (linux/amd64)
 * and, for each further platform, an image holding only /etc/platform (nothing runnable). Every
 * image, the runnable one included, says its platform in /etc/platform, so a test can tell which
 * one an import picked.
 */
export async function pushMultiPlatformImage(
  registryUrl: string,
  name: string,
  tag: string,
  image: TestImageName,
  otherPlatforms: readonly Platform[] = [{ os: 'linux', architecture: 'arm64', variant: 'v8' }],
): Promise<PushedImage> {
  const runnable = buildOciImage(testImageTar(image), {
    extraLayers: [platformMarker(SERVICE_PLATFORM)],
    config: testImageConfig(image),
    platform: SERVICE_PLATFORM,
  })
  const markers = otherPlatforms.map((platform) => buildOciImage(platformMarker(platform), { platform }))
  const images = [...markers, runnable]
  const base = registryUrl.replace(/\/+$/, '')
  for (const each of images) await pushManifest(base, name, each.manifest.digest, each)
  const { index, indexObject } = buildOciIndex(images)
  const digest = await putManifest(base, name, tag, index)
  return { digest, manifest: indexObject, reference: `${new URL(base).host}/${name}:${tag}` }
}

/** Pushes the blobs and manifest of a built image as `name:tag`. */
export async function pushOciImage(registryUrl: string, name: string, tag: string, image: OciImage): Promise<PushedImage> {
  const base = registryUrl.replace(/\/+$/, '')
  const digest = await pushManifest(base, name, tag, image)
  return { digest, manifest: image.manifestObject, reference: `${new URL(base).host}/${name}:${tag}` }
}

async function pushManifest(base: string, name: string, reference: string, image: OciImage): Promise<string> {
  for (const blob of [...image.layers, image.config]) await uploadBlob(base, name, blob)
  return putManifest(base, name, reference, image.manifest)
}

async function putManifest(base: string, name: string, reference: string, manifest: Blob): Promise<string> {
  const response = await fetch(`${base}/v2/${name}/manifests/${encodeURIComponent(reference)}`, {
    method: 'PUT',
    headers: { 'content-type': manifest.mediaType },
    body: manifest.bytes,
  })
  const text = await response.text()
  if (response.status !== 201) throw new Error(`pushing manifest ${name}:${reference} failed: ${response.status} ${text}`)
  const digest = response.headers.get('docker-content-digest') ?? ''
  if (digest !== manifest.digest) {
    throw new Error(`registry reported digest ${digest} for ${name}:${reference}, expected ${manifest.digest}`)
  }
  return digest
}

async function uploadBlob(base: string, name: string, blob: Blob): Promise<void> {
  const start = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' })
  await start.arrayBuffer()
  const location = start.headers.get('location')
  if (start.status !== 202 || location === null) throw new Error(`starting a blob upload to ${name} failed: ${start.status}`)
  // Location may be relative, and already carries the upload state in its query string.
  const target = new URL(location, `${base}/`)
  target.searchParams.set('digest', blob.digest)
  const put = await fetch(target, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: blob.bytes,
  })
  const text = await put.text()
  if (put.status !== 201) throw new Error(`uploading blob ${blob.digest} to ${name} failed: ${put.status} ${text}`)
}
