// Uploaded files, content-addressed by sha256: uploading the same bytes again returns the same record.
import { createHash, randomUUID } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface FileRecord {
  uuid: string
  sha256: string
  size: number
  createdAt: string
  updatedAt: string
  path: string
}

export function toWireFile(file: FileRecord): Record<string, unknown> {
  return {
    uuid: file.uuid,
    sha256: file.sha256,
    size: file.size,
    created_at: file.createdAt,
    updated_at: file.updatedAt,
  }
}

export class FileStore {
  private readonly root: string
  private readonly bySha = new Map<string, FileRecord>()
  private readonly byUuid = new Map<string, FileRecord>()

  constructor(dataDir: string) {
    this.root = join(dataDir, 'files')
  }

  async put(bytes: Buffer): Promise<{ record: FileRecord; created: boolean }> {
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    const existing = this.bySha.get(sha256)
    if (existing) {
      existing.updatedAt = new Date().toISOString()
      return { record: existing, created: false }
    }
    await mkdir(this.root, { recursive: true })
    const path = join(this.root, sha256)
    await writeFile(path, bytes)
    const now = new Date().toISOString()
    const record: FileRecord = { uuid: randomUUID(), sha256, size: bytes.length, createdAt: now, updatedAt: now, path }
    this.bySha.set(sha256, record)
    this.byUuid.set(record.uuid, record)
    return { record, created: true }
  }

  bySha256(sha256: string): FileRecord | undefined {
    return this.bySha.get(sha256.toLowerCase())
  }

  byId(uuid: string): FileRecord | undefined {
    return this.byUuid.get(uuid)
  }

  /** Drops a stored file, as the service's retention eventually does. True when it existed. */
  forget(sha256: string): boolean {
    const record = this.bySha.get(sha256.toLowerCase())
    if (!record) return false
    this.bySha.delete(record.sha256)
    this.byUuid.delete(record.uuid)
    return true
  }

  list(): FileRecord[] {
    return [...this.bySha.values()].reverse()
  }
}
