// Sandboxes (api-openapi.json: Sandbox) and their lifecycle: `starting` → `running` after a delay (or
// `failed_to_start`), `terminating` → `terminated` on request or when `ttl` runs out. A sandbox's root
// filesystem is a copy of its snapshot's image tree; terminating with a snapshot policy turns that root into
// a new snapshot aliased `sandbox:<id>`, an ephemeral sandbox's root is deleted.
import { randomBytes, randomUUID } from 'node:crypto'
import { join } from 'node:path'
import type { App } from './app.ts'
import type { Exec } from './execs.ts'
import type { SnapshotRecord } from './snapshots.ts'
import type { SandboxStatus, SandboxView } from './types.ts'

export interface TerminationSnapshot {
  aliases?: string[]
  ttl?: number
  tags?: Record<string, string>
}

export interface SandboxRecord {
  id: string
  snapshotId: string
  cpu: number
  memoryBytes: number
  ttl: number | null
  tags: Record<string, string>
  terminationPolicy: { snapshot: TerminationSnapshot } | null
  status: SandboxStatus
  statusReason: string
  createdAt: string
  startedAt: string | null
  terminatedAt: string | null
  updatedAt: string
  seq: number
  agentToken: string | null
  root: string | null
  /** Ends the sandbox's namespaces and every process in them (held while the sandbox has a root). */
  releaseRoot: (() => Promise<void>) | null
  execs: Map<string, Exec>
  /** Process groups of its execs, for the ports scan and for killing everything at the end. */
  groups: Set<number>
  startTask: Promise<void> | null
  /** Cuts the start delay short when the sandbox is terminated (or the emulator closes) while starting. */
  startAbort: AbortController
  ttlTimer: NodeJS.Timeout | null
  /** Wakes /wait calls when the status settles. */
  settledWaiters: Array<() => void>
}

export interface StartFault {
  delayMs?: number
  failWith?: 'internal_error' | 'out_of_capacity'
}

const TRANSIENT: ReadonlySet<SandboxStatus> = new Set(['starting', 'terminating', 'recovering'])
const AGENT_VERSION = 'pint-emulator-1.0.0'

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    })
  })

export class SandboxTable {
  private readonly app: App
  private readonly agentBase: string
  private readonly byId = new Map<string, SandboxRecord>()
  private nextSeq = 0

  constructor(app: App, agentBase: string) {
    this.app = app
    this.agentBase = agentBase
  }

  get(id: string): SandboxRecord | undefined {
    return this.byId.get(id.toLowerCase())
  }

  /** Newest first. */
  all(): SandboxRecord[] {
    return [...this.byId.values()].sort((a, b) => b.seq - a.seq)
  }

  agentUrl(record: SandboxRecord): string {
    return `${this.agentBase}/agents/${record.id}`
  }

  create(
    spec: Pick<SandboxRecord, 'snapshotId' | 'cpu' | 'memoryBytes' | 'ttl' | 'tags' | 'terminationPolicy'>,
    snapshot: SnapshotRecord,
    fault: StartFault,
  ): SandboxRecord {
    const now = new Date().toISOString()
    const record: SandboxRecord = {
      ...spec,
      id: randomUUID(),
      status: 'starting',
      statusReason: 'cold_start_requested',
      createdAt: now,
      startedAt: null,
      terminatedAt: null,
      updatedAt: now,
      seq: this.nextSeq++,
      agentToken: null,
      root: null,
      releaseRoot: null,
      execs: new Map(),
      groups: new Set(),
      startTask: null,
      startAbort: new AbortController(),
      ttlTimer: null,
      settledWaiters: [],
    }
    this.byId.set(record.id, record)
    record.startTask = this.start(record, snapshot, fault)
    this.app.track(record.startTask)
    return record
  }

  private setStatus(record: SandboxRecord, status: SandboxStatus, reason: string): void {
    record.status = status
    record.statusReason = reason
    record.updatedAt = new Date().toISOString()
    if (!TRANSIENT.has(status)) {
      const waiters = record.settledWaiters
      record.settledWaiters = []
      for (const wake of waiters) wake()
    }
  }

  private async start(record: SandboxRecord, snapshot: SnapshotRecord, fault: StartFault): Promise<void> {
    await sleep(fault.delayMs ?? this.app.options.startDelayMs, record.startAbort.signal)
    if (record.status !== 'starting' || record.startAbort.signal.aborted) return
    if (fault.failWith) return this.setStatus(record, 'failed_to_start', fault.failWith)
    const root = join(this.app.dataDir, 'sandboxes', record.id)
    try {
      await this.app.fs.call('copyTree', { from: snapshot.dir, to: root })
      record.releaseRoot = await this.app.runner.holdRoot(root)
      record.root = root
    } catch {
      await this.app.fs.call('removeTree', { path: root }).catch(() => undefined)
      return this.setStatus(record, 'failed_to_start', 'internal_error')
    }
    if (record.status !== 'starting') return
    record.agentToken = randomBytes(24).toString('base64url')
    record.startedAt = new Date().toISOString()
    this.setStatus(record, 'running', 'cold_started')
    // The ttl is the sandbox's running time (from started_at), so a slow start does not eat it up.
    if (record.ttl !== null) {
      record.ttlTimer = setTimeout(() => this.terminate(record, undefined, 'autoterminated'), record.ttl * 1000)
      record.ttlTimer.unref()
    }
  }

  /**
   * Starts the teardown and returns at once with the sandbox `terminating` (the SDK then calls /wait).
   * `snapshot`: undefined keeps the stored policy, null makes the teardown ephemeral.
   */
  terminate(record: SandboxRecord, snapshot: TerminationSnapshot | null | undefined, reason: 'termination_requested' | 'autoterminated'): void {
    if (record.status === 'terminating' || record.status === 'terminated' || record.status === 'failed_to_start') return
    if (record.ttlTimer) clearTimeout(record.ttlTimer)
    record.startAbort.abort()
    this.setStatus(record, 'terminating', reason)
    record.agentToken = null
    const policy = snapshot === undefined ? (record.terminationPolicy?.snapshot ?? null) : snapshot
    this.app.track(this.teardown(record, policy, reason))
  }

  private async teardown(record: SandboxRecord, policy: TerminationSnapshot | null, reason: string): Promise<void> {
    await record.startTask?.catch(() => undefined)
    this.killEverything(record)
    await sleep(this.app.options.terminateDelayMs)
    await record.releaseRoot?.()
    record.releaseRoot = null
    const root = record.root
    record.root = null
    if (root !== null) {
      if (policy) await this.snapshotRoot(record, root, policy)
      else await this.app.fs.call('removeTree', { path: root })
    }
    record.terminatedAt = new Date().toISOString()
    this.setStatus(record, 'terminated', reason)
  }

  /** Kills every process the sandbox ran and ends its exec streams as a vanished VM would. */
  killEverything(record: SandboxRecord): void {
    for (const exec of record.execs.values()) exec.end('vanished')
    for (const group of record.groups) {
      try {
        process.kill(-group, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }

  private async snapshotRoot(record: SandboxRecord, root: string, policy: TerminationSnapshot): Promise<void> {
    const dir = this.app.images.allocateDir()
    await this.app.fs.call('moveTree', { from: root, to: dir })
    const snapshot = this.app.snapshots.create({
      image: `sandbox:${record.id}`,
      dir,
      byteSize: await this.app.fs.call('treeSize', { path: dir }),
      tags: { ...(policy.tags ?? {}) },
      ttl: policy.ttl ?? null,
      architecture: null,
    })
    for (const alias of [`sandbox:${record.id}`, ...(policy.aliases ?? [])]) this.app.snapshots.setAlias(alias, snapshot.id)
  }

  /** Resolves with the sandbox once it is settled, or after `timeoutMs` whatever its status. */
  async waitSettled(record: SandboxRecord, timeoutMs: number): Promise<SandboxRecord> {
    if (!TRANSIENT.has(record.status)) return record
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => record.settledWaiters.push(resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ])
    clearTimeout(timer)
    return record
  }

  toWire(record: SandboxRecord): Record<string, unknown> {
    const running = record.status === 'running'
    return {
      id: record.id,
      organization_id: null,
      project_id: this.app.options.projectId,
      snapshot_id: record.snapshotId,
      cpu: record.cpu,
      memory_bytes: record.memoryBytes,
      agent: {
        version: running ? AGENT_VERSION : null,
        token: running ? record.agentToken : null,
        url: running ? this.agentUrl(record) : null,
      },
      ttl: record.ttl,
      tags: { ...record.tags },
      termination_policy: record.terminationPolicy,
      status: record.status,
      status_reason: record.statusReason,
      created_at: record.createdAt,
      started_at: record.startedAt,
      resized_at: null,
      recovery_at: null,
      terminated_at: record.terminatedAt,
      updated_at: record.updatedAt,
    }
  }

  views(): SandboxView[] {
    return this.all().map((record) => ({
      id: record.id,
      snapshotId: record.snapshotId,
      status: record.status,
      statusReason: record.statusReason,
      root: record.root,
      agentUrl: record.status === 'running' ? this.agentUrl(record) : null,
      agentToken: record.status === 'running' ? record.agentToken : null,
      execs: [...record.execs.values()].map((exec) => ({ id: exec.id, status: exec.status, pid: exec.pid, exitCode: exec.exitCode })),
    }))
  }

  /** close(): everything dies at once, roots are released (their removal is the data dir's). */
  async shutdown(): Promise<void> {
    for (const record of this.byId.values()) {
      if (record.ttlTimer) clearTimeout(record.ttlTimer)
      record.startAbort.abort()
      this.killEverything(record)
    }
    for (const record of this.byId.values()) {
      await record.startTask?.catch(() => undefined)
      await record.releaseRoot?.().catch(() => undefined)
      record.releaseRoot = null
    }
  }
}
