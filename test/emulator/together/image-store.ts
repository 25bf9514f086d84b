// Images are directory trees under <dataDir>/images, stored by normalised reference: the builder's results,
// catalogue images seeded from test-images.ts, and images pulled from a loopback OCI registry on first use,
// each with what its OCI config says runs inherit (Env, WorkingDir, User). Trees are written through the
// root-fs operations, so their owners are real. A tree never changes once stored; storing a reference again
// points it at a new tree (as pushing a tag does).
import { randomUUID } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseRegistryUrl, RegistryClient } from '../contree/registry-client.ts'
import { STANDARD_PATH, type ImageRuntimeConfig } from '../oci-image.ts'
import { buildTar, type TarFiles } from '../tar-writer.ts'
import { testImageConfig, testImageTar, type TestImageName } from '../test-images.ts'
import { parseReference } from './image-ref.ts'
import type { TogetherFs } from './rootfs/client.ts'
import type { SeedFile } from './types.ts'

export const DEFAULT_PATH = STANDARD_PATH

/** What later steps and runs inherit from an image besides its files. */
export interface ImageConfig {
  env: Record<string, string>
  workdir: string
  user: string
}

export interface ImageRecord {
  ref: string
  dir: string
  config: ImageConfig
  /** Changes whenever the reference points at a new tree; feeds build cache keys. */
  identity: string
  architecture: 'amd64' | 'arm64'
  createdAt: string
}

export interface SeedOptions {
  /** A catalogue image (test-images.ts) as the first layer; its config is the image's. */
  image?: TestImageName
  /** Files on top (tar-writer shapes: a trailing '/' makes a directory; content, mode, uid, gid, symlinks). */
  files?: Record<string, SeedFile>
  /** Environment on top of the image's. */
  env?: Record<string, string>
}

function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '')
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]'
}

/** An OCI image config's `config` as builds and runs use it (Docker's defaults where it says nothing). */
export function imageConfigOf(config: ImageRuntimeConfig | Record<string, unknown> | null): ImageConfig {
  const env: Record<string, string> = {}
  const entries = Array.isArray(config?.['Env']) ? (config['Env'] as unknown[]) : []
  for (const entry of entries) {
    if (typeof entry !== 'string') continue
    const equals = entry.indexOf('=')
    if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1)
  }
  const workdir = typeof config?.['WorkingDir'] === 'string' && config['WorkingDir'] !== '' ? config['WorkingDir'] : '/'
  const user = typeof config?.['User'] === 'string' && config['User'] !== '' ? config['User'] : 'root'
  return { env: { PATH: DEFAULT_PATH, ...env }, workdir, user }
}

export class ImageStore {
  private readonly root: string
  private readonly scratch: string
  private readonly fs: TogetherFs
  private readonly byRef = new Map<string, ImageRecord>()
  private readonly pulls = new Map<string, Promise<ImageRecord>>()

  constructor(dataDir: string, fs: TogetherFs) {
    this.root = join(dataDir, 'images')
    this.scratch = join(dataDir, 'tmp')
    this.fs = fs
  }

  /** A fresh directory path for a new tree (not created). */
  allocateDir(): string {
    return join(this.root, randomUUID())
  }

  put(ref: string, dir: string, config: ImageConfig, architecture: 'amd64' | 'arm64' = 'amd64'): ImageRecord {
    const record: ImageRecord = { ref, dir, config, identity: randomUUID(), architecture, createdAt: new Date().toISOString() }
    this.byRef.set(ref, record)
    return record
  }

  /** A stored image by any spelling of its reference. */
  get(text: string): ImageRecord | undefined {
    const ref = parseReference(text)
    return ref ? this.byRef.get(ref.normalized) : undefined
  }

  /**
   * A stored image, or one pulled now from a loopback registry (never from the internet: tests must not
   * depend on it). Throws with the reason when there is none.
   */
  async resolve(text: string, signal: AbortSignal): Promise<ImageRecord> {
    const ref = parseReference(text)
    if (!ref) throw new Error(`invalid reference format: ${text}`)
    const stored = this.byRef.get(ref.normalized)
    if (stored) return stored
    if (!isLoopback(ref.registry)) {
      throw new Error(`${ref.normalized}: not found (the emulator knows seeded and built images, and pulls only from 127.0.0.1 registries)`)
    }
    let pull = this.pulls.get(ref.normalized)
    if (!pull) {
      pull = this.pull(ref.normalized, signal).finally(() => this.pulls.delete(ref.normalized))
      this.pulls.set(ref.normalized, pull)
    }
    return pull
  }

  private async pull(normalized: string, signal: AbortSignal): Promise<ImageRecord> {
    const client = new RegistryClient(parseRegistryUrl(normalized), undefined, signal)
    const manifest = await client.pullManifest()
    const dir = this.allocateDir()
    const staging = `${dir}.pulling`
    const blobs = join(this.scratch, `pull-${randomUUID()}`)
    await this.fs.call('makeDirectory', { path: staging, mode: 0o755 })
    await mkdir(blobs, { recursive: true })
    try {
      for (const [index, layer] of manifest.layers.entries()) {
        const blob = join(blobs, `layer-${index}`)
        await client.downloadBlob(layer.digest, blob)
        await this.fs.call('applyLayer', { root: staging, tarFile: blob })
        await rm(blob, { force: true })
      }
      await this.fs.call('moveTree', { from: staging, to: dir })
    } finally {
      await rm(blobs, { recursive: true, force: true })
      await this.fs.call('removeTree', { path: staging })
    }
    return this.put(normalized, dir, imageConfigOf(manifest.config))
  }

  /** A new image under `text`: a catalogue tree and/or files, unpacked like pulled layers (numeric owners). */
  async seed(text: string, opts: SeedOptions = {}): Promise<ImageRecord> {
    const ref = parseReference(text)
    if (!ref) throw new Error(`seedImage: invalid reference ${text}`)
    const layers: Uint8Array[] = []
    if (opts.image) layers.push(testImageTar(opts.image))
    if (opts.files && Object.keys(opts.files).length > 0) layers.push(buildTar(opts.files as TarFiles))
    const dir = this.allocateDir()
    await this.fs.call('makeDirectory', { path: dir, mode: 0o755 })
    await mkdir(this.scratch, { recursive: true })
    for (const [index, layer] of layers.entries()) {
      const tarFile = join(this.scratch, `seed-${randomUUID()}.tar`)
      await writeFile(tarFile, layer)
      try {
        // A files layer lists its parents as root 0755; they must not change the directories below them.
        await this.fs.call('applyLayer', { root: dir, tarFile, keepDirectories: index > 0 })
      } finally {
        await rm(tarFile, { force: true })
      }
    }
    const config = imageConfigOf(opts.image ? testImageConfig(opts.image) : null)
    return this.put(ref.normalized, dir, { ...config, env: { ...config.env, ...opts.env } })
  }

  all(): ImageRecord[] {
    return [...this.byRef.values()]
  }
}
