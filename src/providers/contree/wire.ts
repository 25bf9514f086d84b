/**
 * ConTree v1 wire types (shared/protocols/contree-v1.md §2, §3, §5). Almost everything is optional
 * because the schema says so and older servers omit fields; readers must tolerate absence.
 * These types never leave providers/contree/.
 */
import type { OperationStatus } from '../types.ts'
import { Base64Bytes } from './event-json.ts'

export type StreamEncoding = 'ascii' | 'base64'

/**
 * StreamRepr / EventDataStream: bytes as text under the ascii/base64 rule. In an output event, a
 * long base64 value is left as the frame's bytes (event-json.ts).
 */
export interface StreamRepr {
  value: string | Base64Bytes
  encoding: StreamEncoding | string
  truncated?: boolean
}

export interface ClosableStreamRepr {
  value: string
  encoding?: StreamEncoding
  close?: boolean
}

export interface ProcessState {
  continued?: boolean
  core_dump?: boolean
  exit_code?: number
  pid?: number
  signal?: number
  stopped?: boolean
  timed_out?: boolean
}

export interface InstanceResult {
  resources?: Record<string, number>
  state?: ProcessState
  stdout?: StreamRepr
  stderr?: StreamRepr
  /** Older servers kept the exit code here. */
  exit_code?: number
}

export interface FileSpec {
  uuid: string
  uid?: number
  gid?: number
  /** Octal string, e.g. "0644". */
  mode?: string
}

export interface SpawnRequest {
  command: string
  /** Image UUID or `tag:NAME`. */
  image: string
  shell?: boolean
  args?: string[]
  env?: Record<string, string> | null
  preserve_env?: boolean
  cwd?: string
  uid?: number
  gid?: number
  hostname?: string
  disposable?: boolean
  /** Seconds. */
  timeout?: number
  truncate_output_at?: number
  stdin?: ClosableStreamRepr
  files?: Record<string, FileSpec>
  resources_limits?: { max_layer_bytes?: number }
  networking?: { enabled: boolean }
}

export interface SpawnResponse extends Partial<SpawnRequest> {
  uuid?: string
  result?: InstanceResult
}

export interface ImageImportRequest {
  registry: { url: string; credentials?: { username?: string; password?: string } }
  tag?: string | null
  /** Seconds. */
  timeout?: number
}

export interface ImageImportMetadata {
  registry?: { url?: string; credentials?: { username?: string; password?: string } }
  tag?: string | null
  timeout?: number
}

export interface OperationInstanceMetadata extends Partial<SpawnRequest> {
  result?: InstanceResult
}

export type OperationKind = 'instance' | 'image_import'

export interface OperationResponse {
  uuid?: string
  kind?: OperationKind | string
  status?: OperationStatus | string
  error?: string | null
  created_at?: string
  /** Seconds (float). */
  duration?: number
  image_size?: number
  consumed_cpu?: number
  consumed_memory?: number
  image_uuid?: string
  result_image_uuid?: string | null
  metadata?: (OperationInstanceMetadata & ImageImportMetadata) | null
  result?: { image?: string | null; tag?: string | null; exit_code?: number } | null
}

export interface Image {
  uuid?: string
  tag?: string | null
  created_at?: string
  operation_uuid?: string | null
}

/** Response of POST /v1/files. */
export interface FileRecord {
  uuid: string
  sha256: string
  size: number
}

/** GET /v1/files/{sha256}. */
export interface FileInfo extends FileRecord {
  created_at?: string
  updated_at?: string
}

export interface WhoAmI {
  token_uuid: string
  token_expiration: number | null
  permissions: Record<string, boolean>
  limits?: Record<string, number>
  operations_stat: Record<string, number>
}

// ---- events (§3.4, §5) ----

export interface InitEventData {
  started_at?: string
  runtime_path?: string
  verbose?: boolean
  init_pid?: number
  hostname?: string
  kernel?: string
  machine?: string
  boot_id?: string
}

export interface SpawnEventData {
  pid?: number
  command?: string
  args?: string[]
  shell?: boolean
  cwd?: string
  uid?: number
  gid?: number
  timeout?: number
  truncate_at?: number
  env?: Record<string, string>
}

export interface ExitEventData {
  pid?: number
  /** −1 when signalled. */
  code?: number
  /** −1 when none. */
  signal?: number
  core_dump?: boolean
  timed_out?: boolean
  duration_ms?: number
  resources?: Record<string, number>
}

export interface TruncatedEventData {
  stream?: 'stdout' | 'stderr'
  bytes_emitted?: number
  bytes_dropped?: number
}

export interface CompletionEventData {
  status?: OperationStatus | string
  duration_ms?: number
  result_image_uuid?: string | null
  error?: string | null
  image_size_bytes?: number
  /** Older servers: seconds as a float. */
  duration?: number
  /** Older servers' name for result_image_uuid. */
  result_image?: string | null
}

export interface EventDataByType {
  init: InitEventData
  spawn: SpawnEventData
  stdin: StreamRepr
  stdout: StreamRepr
  stderr: StreamRepr
  exit: ExitEventData
  truncated: TruncatedEventData
  completion: CompletionEventData
}

/** One event of an operation's log. Unknown types pass through with their data untouched. */
export interface OperationEvent {
  id: number
  ts?: string
  spid?: number
  type: keyof EventDataByType | (string & {})
  data: Record<string, unknown>
  /** True for a completion made up by the follower from the operation record (polling fallback). */
  synthetic?: boolean
}

/** Narrows an event to a known type so its data can be read with the documented fields. */
export function isEventOf<K extends keyof EventDataByType>(
  event: OperationEvent,
  type: K,
): event is OperationEvent & { type: K; data: EventDataByType[K] & Record<string, unknown> } {
  return event.type === type
}

/**
 * Decodes StreamReprs: `base64` is the raw bytes (Node's lenient decoder, as Buffer.from uses);
 * anything else is the text as is, encoded as UTF-8, so a lenient server sending non-ASCII text
 * under `ascii` loses nothing.
 *
 * Every value is decoded into one buffer, reused from call to call: what `decode` returns is valid
 * until the next call. A stream of output events would otherwise allocate a buffer per event, outside
 * V8's heap (measured at stop 12: 36 → 30 full collections per 100 MB). Writing into a buffer known to
 * be big enough also skips a slow path of Buffer.from (base64).
 */
export class StreamDecoder {
  #scratch = Buffer.alloc(0)

  decode(repr: { value: string | Base64Bytes; encoding?: string }): Buffer {
    const value = repr.value instanceof Base64Bytes ? repr.value.bytes.toString('latin1') : repr.value
    if (typeof value !== 'string' || value === '') return this.#scratch.subarray(0, 0)
    const base64 = repr.value instanceof Base64Bytes || repr.encoding === 'base64'
    // The most the text can decode to: 3 bytes per 4 characters, or 3 bytes per UTF-16 unit.
    const most = base64 ? ((value.length + 3) >>> 2) * 3 : value.length * 3
    if (this.#scratch.length < most) this.#scratch = Buffer.allocUnsafe(Math.max(most, 2 * this.#scratch.length, 64 * 1024))
    return this.#scratch.subarray(0, this.#scratch.write(value, 0, base64 ? 'base64' : 'utf8'))
  }
}
