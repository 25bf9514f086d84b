// Operation records (protocol §3.3) and their wire shapes.
import { randomUUID } from 'node:crypto'
import { EventLog } from './event-log.ts'
import type { OperationKind, OperationRecordView, OperationStatus } from './types.ts'

export const TERMINAL: ReadonlySet<OperationStatus> = new Set(['SUCCESS', 'FAILED', 'CANCELLED'])

export interface Operation {
  uuid: string
  kind: OperationKind
  status: OperationStatus
  error: string | null
  createdAt: string
  createdMs: number
  finishedMs: number | null
  imageUuid: string | null
  resultImageUuid: string | null
  resultTag: string | null
  imageSize: number | null
  /** Spawn/import request echo; `result` (InstanceResult) is added when the process ends. */
  metadata: Record<string, unknown>
  log: EventLog
  pid: number | null
  /** Set by the runner; asks the running work to stop (DELETE). */
  cancel: (() => void) | null
  cancelRequested: boolean
}

export class OperationTable {
  private readonly byUuid = new Map<string, Operation>()

  create(kind: OperationKind, imageUuid: string | null, metadata: Record<string, unknown>): Operation {
    const now = Date.now()
    const op: Operation = {
      uuid: randomUUID(),
      kind,
      status: 'PENDING',
      error: null,
      createdAt: new Date(now).toISOString(),
      createdMs: now,
      finishedMs: null,
      imageUuid,
      resultImageUuid: null,
      resultTag: null,
      imageSize: null,
      metadata,
      log: new EventLog(),
      pid: null,
      cancel: null,
      cancelRequested: false,
    }
    this.byUuid.set(op.uuid, op)
    return op
  }

  get(uuid: string): Operation | undefined {
    return this.byUuid.get(uuid)
  }

  all(): Operation[] {
    return [...this.byUuid.values()]
  }

  views(): OperationRecordView[] {
    return this.all().map((op) => ({
      uuid: op.uuid,
      kind: op.kind,
      status: op.status,
      error: op.error,
      createdAt: op.createdAt,
      imageUuid: op.imageUuid,
      resultImageUuid: op.resultImageUuid,
      pid: op.pid,
      eventCount: op.log.events.length,
    }))
  }
}

export function durationSeconds(op: Operation): number {
  return ((op.finishedMs ?? Date.now()) - op.createdMs) / 1000
}

export function toWireSummary(op: Operation): Record<string, unknown> {
  return {
    uuid: op.uuid,
    kind: op.kind,
    status: op.status,
    error: op.error,
    created_at: op.createdAt,
    duration: durationSeconds(op),
    image_size: op.imageSize ?? 0,
    consumed_cpu: 0,
    consumed_memory: 0,
    image_uuid: op.imageUuid,
    result_image_uuid: op.resultImageUuid,
  }
}

export function toWireOperation(op: Operation): Record<string, unknown> {
  return {
    ...toWireSummary(op),
    metadata: op.metadata,
    result: { image: op.resultImageUuid, tag: op.resultTag },
  }
}
