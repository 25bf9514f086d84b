// Images are real directory trees under <dataDir>/images/<uuid>, written through the root-fs helper
// so their owners are real; the record keeps the single tag, and the OCI config when one is known.
import { randomUUID } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ImageRuntimeConfig } from '../oci-image.ts'
import { buildTar, type TarFiles } from '../tar-writer.ts'
import { testImageConfig, testImageTar, type TestImageName } from '../test-images.ts'
import type { RootFs } from './rootfs/client.ts'
import type { ImageView, SeedFile } from './types.ts'

export interface ImageRecord {
  uuid: string
  tag: string | null
  createdAt: string
  operationUuid: string | null
  dir: string
  /** Manifest digest of an imported image, so a re-import can reuse the tree. */
  digest: string | null
  /** The image config's `config` (Env, WorkingDir, User …) of imported and catalogue images. */
  config: ImageRuntimeConfig | null
}

export interface WireImage {
  uuid: string
  tag: string | null
  created_at: string
  operation_uuid: string | null
}

/** A tag is held by one image at a time: assigning it elsewhere is refused (409), never moved. */
export class TagConflictError extends Error {
  readonly holder: string
  constructor(tag: string, holder: string) {
    super(`tag ${tag} is held by image ${holder}; delete it there first`)
    this.holder = holder
  }
}

export function toWireImage(image: ImageRecord): WireImage {
  return { uuid: image.uuid, tag: image.tag, created_at: image.createdAt, operation_uuid: image.operationUuid }
}

export interface SeedOptions {
  tag?: string
  /** A catalogue image (test-images.ts) as the first layer; its config is kept on the record. */
  image?: TestImageName
  /** Files on top (tar-writer shapes: a trailing '/' makes a directory; content, mode, uid, gid, symlinks). */
  files?: Record<string, SeedFile>
}

export class ImageStore {
  private readonly root: string
  private readonly scratch: string
  private readonly fs: RootFs
  private readonly byUuid = new Map<string, ImageRecord>()

  constructor(dataDir: string, fs: RootFs) {
    this.root = join(dataDir, 'images')
    this.scratch = join(dataDir, 'tmp')
    this.fs = fs
  }

  /** A fresh directory path for a new image; the caller fills it, then calls register(). */
  allocate(): { uuid: string; dir: string } {
    const uuid = randomUUID()
    return { uuid, dir: join(this.root, uuid) }
  }

  register(uuid: string, dir: string, operationUuid: string | null, digest: string | null = null, config: ImageRuntimeConfig | null = null): ImageRecord {
    const record: ImageRecord = { uuid, tag: null, createdAt: new Date().toISOString(), operationUuid, dir, digest, config }
    this.byUuid.set(uuid, record)
    return record
  }

  get(uuid: string): ImageRecord | undefined {
    return this.byUuid.get(uuid)
  }

  findByTag(tag: string): ImageRecord | undefined {
    for (const image of this.byUuid.values()) if (image.tag === tag) return image
    return undefined
  }

  findByDigest(digest: string): ImageRecord | undefined {
    for (const image of this.byUuid.values()) if (image.digest === digest) return image
    return undefined
  }

  /** `uuid` or `tag:NAME`, as spawn requests name images. */
  resolveReference(reference: string): ImageRecord | undefined {
    if (reference.startsWith('tag:')) return this.findByTag(reference.slice(4))
    return this.get(reference) ?? undefined
  }

  /** Gives the image the tag (replacing its own); throws TagConflictError when another image holds it. */
  setTag(uuid: string, tag: string): ImageRecord {
    const image = this.byUuid.get(uuid)
    if (!image) throw new Error(`image ${uuid} not found`)
    const holder = this.findByTag(tag)
    if (holder && holder.uuid !== uuid) throw new TagConflictError(tag, holder.uuid)
    image.tag = tag
    return image
  }

  /** Newest first; `tag` and `uuid` are prefix filters (protocol §2.2). */
  list(filter: { tag?: string; uuid?: string; tagged?: boolean }): ImageRecord[] {
    return [...this.byUuid.values()]
      .filter((image) => filter.tag === undefined || (image.tag ?? '').startsWith(filter.tag))
      .filter((image) => filter.uuid === undefined || image.uuid.startsWith(filter.uuid))
      .filter((image) => !filter.tagged || image.tag !== null)
      .reverse()
  }

  views(): ImageView[] {
    return [...this.byUuid.values()].map((image) => ({
      uuid: image.uuid,
      tag: image.tag,
      createdAt: image.createdAt,
      operationUuid: image.operationUuid,
      dir: image.dir,
      config: image.config === null ? null : structuredClone(image.config),
    }))
  }

  /** A new image from a catalogue tree and/or files, unpacked like an imported layer. */
  async seed(opts: SeedOptions): Promise<ImageRecord> {
    const { uuid, dir } = this.allocate()
    const layers: Uint8Array[] = []
    if (opts.image) layers.push(testImageTar(opts.image))
    if (opts.files && Object.keys(opts.files).length > 0) layers.push(buildTar(opts.files as TarFiles))
    await this.fs.call('makeDirectory', { path: dir, mode: 0o755 })
    await mkdir(this.scratch, { recursive: true })
    for (const [index, layer] of layers.entries()) {
      const tarFile = join(this.scratch, `seed-${uuid}-${index}.tar`)
      await writeFile(tarFile, layer)
      try {
        await this.fs.call('applyLayer', { root: dir, tarFile, keepDirectories: index > 0 })
      } finally {
        await rm(tarFile, { force: true })
      }
    }
    const record = this.register(uuid, dir, null, null, opts.image ? testImageConfig(opts.image) : null)
    if (opts.tag) this.setTag(uuid, opts.tag)
    return record
  }
}
