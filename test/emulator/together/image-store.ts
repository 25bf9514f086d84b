// Images are directory trees under <dataDir>/images, stored by normalised reference: the builder's results,
// seeded test images, and images pulled from a loopback OCI registry on first use. A tree never changes once
// stored; storing a reference again points it at a new tree (as pushing a tag does).
import { randomUUID } from 'node:crypto'
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { applyLayer } from './layer-apply.ts'
import { parseRegistryUrl, RegistryClient } from '../contree/registry-client.ts'
import { parseReference } from './image-ref.ts'
import type { SeedFile } from './types.ts'

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

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

function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '')
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]'
}

export class ImageStore {
  private readonly root: string
  private readonly byRef = new Map<string, ImageRecord>()
  private readonly pulls = new Map<string, Promise<ImageRecord>>()

  constructor(dataDir: string) {
    this.root = join(dataDir, 'images')
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
    await mkdir(staging, { recursive: true, mode: 0o755 })
    try {
      for (const [index, layer] of manifest.layers.entries()) {
        const blob = join(staging + '.blobs', `layer-${index}`)
        await mkdir(dirname(blob), { recursive: true })
        await client.downloadBlob(layer.digest, blob)
        await applyLayer(staging, blob)
      }
      await rename(staging, dir)
    } finally {
      await rm(staging + '.blobs', { recursive: true, force: true })
      await rm(staging, { recursive: true, force: true })
    }
    return this.put(normalized, dir, { env: { PATH: DEFAULT_PATH }, workdir: '/', user: 'root' })
  }

  async seed(text: string, files: Record<string, SeedFile>, env: Record<string, string> = {}): Promise<ImageRecord> {
    const ref = parseReference(text)
    if (!ref) throw new Error(`seedImage: invalid reference ${text}`)
    const dir = this.allocateDir()
    await mkdir(dir, { recursive: true, mode: 0o755 })
    for (const [path, spec] of Object.entries(files)) {
      const target = resolve(dir, '.' + (path.startsWith('/') ? path : '/' + path))
      if (!target.startsWith(dir + '/')) throw new Error(`seed path escapes the image: ${path}`)
      const content = typeof spec === 'string' || spec instanceof Uint8Array ? spec : spec.content
      const mode = typeof spec === 'object' && !(spec instanceof Uint8Array) ? spec.mode : undefined
      if (path.endsWith('/')) {
        await mkdir(target, { recursive: true })
      } else {
        await mkdir(dirname(target), { recursive: true })
        await writeFile(target, content)
      }
      if (mode !== undefined) await chmod(target, mode)
    }
    return this.put(ref.normalized, dir, { env: { PATH: DEFAULT_PATH, ...env }, workdir: '/', user: 'root' })
  }

  all(): ImageRecord[] {
    return [...this.byRef.values()]
  }
}
