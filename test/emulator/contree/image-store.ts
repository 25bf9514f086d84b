// Images are real directory trees under <dataDir>/images/<uuid>; the record keeps the single tag.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { promisify } from 'node:util'
import type { ImageView, SeedFile } from './types.ts'

const run = promisify(execFile)

export interface ImageRecord {
  uuid: string
  tag: string | null
  createdAt: string
  operationUuid: string | null
  dir: string
  /** Manifest digest of an imported image, so a re-import can reuse the tree. */
  digest: string | null
}

export interface WireImage {
  uuid: string
  tag: string | null
  created_at: string
  operation_uuid: string | null
}

export function toWireImage(image: ImageRecord): WireImage {
  return { uuid: image.uuid, tag: image.tag, created_at: image.createdAt, operation_uuid: image.operationUuid }
}

/** Copies a tree without hardlinks so the parent image stays immutable. */
export async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true })
  await run('cp', ['-a', '--reflink=auto', from, to])
}

export class ImageStore {
  private readonly root: string
  private readonly byUuid = new Map<string, ImageRecord>()

  constructor(dataDir: string) {
    this.root = join(dataDir, 'images')
  }

  /** A fresh directory path for a new image; the caller fills it, then calls register(). */
  allocate(): { uuid: string; dir: string } {
    const uuid = randomUUID()
    return { uuid, dir: join(this.root, uuid) }
  }

  register(uuid: string, dir: string, operationUuid: string | null, digest: string | null = null): ImageRecord {
    const record: ImageRecord = {
      uuid,
      tag: null,
      createdAt: new Date().toISOString(),
      operationUuid,
      dir,
      digest,
    }
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

  /** A tag names one image: assigning it takes it from whichever image held it. */
  setTag(uuid: string, tag: string): ImageRecord {
    const image = this.byUuid.get(uuid)
    if (!image) throw new Error(`image ${uuid} not found`)
    for (const other of this.byUuid.values()) if (other.tag === tag) other.tag = null
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
    }))
  }

  async seed(opts: { tag?: string; files?: Record<string, SeedFile> }): Promise<ImageRecord> {
    const { uuid, dir } = this.allocate()
    await mkdir(dir, { recursive: true, mode: 0o755 })
    for (const [path, spec] of Object.entries(opts.files ?? {})) {
      const target = resolve(dir, '.' + (path.startsWith('/') ? path : '/' + path))
      if (!target.startsWith(dir + '/')) throw new Error(`seed path escapes the image: ${path}`)
      const content = typeof spec === 'string' || spec instanceof Uint8Array ? spec : spec.content
      const mode = typeof spec === 'object' && !(spec instanceof Uint8Array) ? spec.mode : undefined
      if (path.endsWith('/')) {
        await mkdir(target, { recursive: true })
        if (mode !== undefined) await chmod(target, mode)
        continue
      }
      await mkdir(dirname(target), { recursive: true })
      await writeFile(target, content)
      if (mode !== undefined) await chmod(target, mode)
    }
    const record = this.register(uuid, dir, null)
    if (opts.tag) this.setTag(uuid, opts.tag)
    return record
  }
}
