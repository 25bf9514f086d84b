// Snapshots and their aliases (api-openapi.json: Snapshot, SnapshotAlias). A snapshot keeps the image tree
// it was created from, so rebuilding the same image_ref later does not change it. `ttl` retires it.
import { randomUUID } from 'node:crypto'
import type { SnapshotView } from './types.ts'

export interface SnapshotRecord {
  id: string
  image: string
  /** The image tree sandboxes copy. */
  dir: string
  byteSize: number
  tags: Record<string, string>
  ttl: number | null
  architecture: string | null
  createdAt: string
  updatedAt: string
  retiredAt: string | null
  /** Creation order (newest first in lists, ties impossible). */
  seq: number
  timer: NodeJS.Timeout | null
}

interface AliasRecord {
  snapshotId: string
  createdAt: string
}

export class SnapshotTable {
  private readonly byId = new Map<string, SnapshotRecord>()
  private readonly aliases = new Map<string, AliasRecord>()
  private readonly projectId: string
  private nextSeq = 0

  constructor(projectId: string) {
    this.projectId = projectId
  }

  create(spec: { image: string; dir: string; byteSize: number; tags: Record<string, string>; ttl: number | null; architecture: string | null }): SnapshotRecord {
    const now = new Date()
    const record: SnapshotRecord = {
      ...spec,
      id: randomUUID(),
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
      retiredAt: null,
      seq: this.nextSeq++,
      timer: null,
    }
    if (spec.ttl !== null) {
      record.timer = setTimeout(() => this.retire(record), spec.ttl * 1000)
      record.timer.unref()
    }
    this.byId.set(record.id, record)
    return record
  }

  get(id: string): SnapshotRecord | undefined {
    return this.byId.get(id.toLowerCase())
  }

  byAlias(alias: string): SnapshotRecord | undefined {
    const entry = this.aliases.get(alias)
    return entry ? this.byId.get(entry.snapshotId) : undefined
  }

  retire(record: SnapshotRecord): SnapshotRecord {
    if (record.retiredAt === null) {
      record.retiredAt = new Date().toISOString()
      record.updatedAt = record.retiredAt
    }
    if (record.timer) clearTimeout(record.timer)
    record.timer = null
    return record
  }

  /** Upsert: an alias that exists is repointed. */
  setAlias(alias: string, snapshotId: string): void {
    this.aliases.set(alias, { snapshotId, createdAt: new Date().toISOString() })
  }

  deleteAlias(alias: string): void {
    this.aliases.delete(alias)
  }

  aliasesOf(snapshotId: string): Array<{ snapshot_id: string; alias: string; created_at: string }> {
    return [...this.aliases.entries()]
      .filter(([, entry]) => entry.snapshotId === snapshotId)
      .map(([alias, entry]) => ({ snapshot_id: snapshotId, alias, created_at: entry.createdAt }))
  }

  /** Newest first. */
  all(): SnapshotRecord[] {
    return [...this.byId.values()].sort((a, b) => b.seq - a.seq)
  }

  toWire(record: SnapshotRecord): Record<string, unknown> {
    return {
      id: record.id,
      organization_id: null,
      project_id: this.projectId,
      byte_size: record.byteSize,
      tags: { ...record.tags },
      ttl: record.ttl,
      memory: false,
      created_at: record.createdAt,
      retired_at: record.retiredAt,
      updated_at: record.updatedAt,
    }
  }

  views(): SnapshotView[] {
    return this.all().map((record) => ({
      id: record.id,
      image: record.image,
      tags: { ...record.tags },
      retired: record.retiredAt !== null,
      aliases: this.aliasesOf(record.id).map((entry) => entry.alias),
      dir: record.dir,
    }))
  }

  stopTimers(): void {
    for (const record of this.byId.values()) if (record.timer) clearTimeout(record.timer)
  }
}
