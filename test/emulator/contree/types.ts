// Public types of the ConTree emulator. Wire shapes follow shared/protocols/contree-v1.md.
import type { ImageRuntimeConfig } from '../oci-image.ts'
import type { AppliedFault as SharedAppliedFault, BaseFaultRule, FaultController as SharedFaultController } from '../shared/fault-rules.ts'
import type { TarEntryInput } from '../tar-writer.ts'
import type { TestImageName } from '../test-images.ts'

export interface ContreeEmulatorOptions {
  /** When set, `Authorization: Bearer <token>` is required on /v1 routes, else 401. */
  token?: string
  /** When set, the `Project` header must equal it, else 403. */
  project?: string
  /** Gzip every body like the real API (default true). */
  gzip?: boolean
  /** Interval of `: keepalive` comments on idle follow streams (default 1000 ms). */
  keepaliveMs?: number
  /** Delay of each PENDING→ASSIGNED→EXECUTING step (default 10 ms). */
  stateDelayMs?: number
  /** Where image trees, files and instance roots live; default a temp dir removed on close(). */
  dataDir?: string
  /** Also emit the stub's stale `duration`/`result_image` in completion events. */
  legacyCompletionFields?: boolean
  /** Port to listen on (default 0 = any free port). Always bound to 127.0.0.1. */
  port?: number
  /** Where start-up notes go (default console.warn). */
  log?: (line: string) => void
  /** Catalogue image (test-images.ts) seeded as `busybox:latest` (default 'base'). */
  defaultImage?: TestImageName
}

export type FaultAction =
  | { kind: 'status'; status: number; retryAfter?: string; body?: unknown }
  | { kind: 'drop-before-response' }
  | { kind: 'drop-after-response' }
  | { kind: 'hang' }
  | {
      kind: 'cut-stream'
      /** Complete frames sent before the cut (default 0). */
      afterEvents?: number
      /** Cut after exactly this many bytes of SSE text instead (wins over afterEvents and within). */
      afterBytes?: number
      /** Where in the next frame: its middle ('frame', default) or inside its first multi-byte UTF-8 character. */
      within?: 'frame' | 'utf8-character'
      /** The last piece goes out as a chunk whose size line announces more bytes than are sent. */
      partialChunk?: boolean
    }
  | { kind: 'sse-error'; afterEvents: number }
  | { kind: 'broken-chunking'; afterEvents: number }
  | { kind: 'truncated-gzip'; afterEvents: number }
  | { kind: 'corrupt-gzip'; afterEvents: number }
  | { kind: 'stall'; afterEvents: number }
  | { kind: 'keepalive-only'; count?: number }
  | { kind: 'slow-drip'; delayMs: number }
  | { kind: 'events-unavailable' }

export type StreamFaultAction = Extract<
  FaultAction,
  {
    kind:
      | 'cut-stream'
      | 'sse-error'
      | 'broken-chunking'
      | 'truncated-gzip'
      | 'corrupt-gzip'
      | 'stall'
      | 'keepalive-only'
      | 'slow-drip'
      | 'events-unavailable'
  }
>

export type FaultRule = BaseFaultRule<FaultAction>

/** Which request got which fault (shared/fault-rules.ts). */
export type AppliedFault = SharedAppliedFault<FaultAction>

export type FaultController = SharedFaultController<FaultRule, FaultAction>

export interface RecordedRequest {
  method: string
  /** Pathname, still percent-encoded. */
  path: string
  /** Query parameters (last value wins for repeated keys). */
  query: Record<string, string>
  /** Lower-cased header names; the authorization value is replaced by '<redacted>'. */
  headers: Record<string, string>
  /** Bytes of request body received (0 until the body was read). */
  bodyBytes: number
  /** Arrival time, epoch milliseconds. */
  at: number
  /** Kind of the fault applied to this request, if any. */
  fault?: FaultAction['kind']
}

export type OperationStatus = 'PENDING' | 'ASSIGNED' | 'EXECUTING' | 'SUCCESS' | 'FAILED' | 'CANCELLED'
export type OperationKind = 'instance' | 'image_import'

export interface OperationRecordView {
  uuid: string
  kind: OperationKind
  status: OperationStatus
  error: string | null
  createdAt: string
  imageUuid: string | null
  resultImageUuid: string | null
  /** Local pid of the spawned process (the wrapper's pid when sandboxed), null until spawned. */
  pid: number | null
  eventCount: number
}

export interface ImageView {
  uuid: string
  tag: string | null
  createdAt: string
  operationUuid: string | null
  /** Directory holding the image's root filesystem (owners as the sandbox sees them, see README). */
  dir: string
  /** The OCI config's `config` of imported and catalogue images, null for spawn results. */
  config: ImageRuntimeConfig | null
}

/** An entry of a seeded image, in tar-writer's shapes (a trailing '/' in the path makes a directory). */
export type SeedFile = TarEntryInput

export type SandboxMode = 'root' | 'user-namespace'

export interface ContreeEmulator {
  /** http://127.0.0.1:PORT, no trailing slash. */
  url: string
  close(): Promise<void>
  faults: FaultController
  requests: RecordedRequest[]
  operations(): OperationRecordView[]
  images(): ImageView[]
  /**
   * A new image: a catalogue tree (`image`, test-images.ts) and/or `files` on top; empty without
   * either. A tag held by another image is refused, as PATCH …/tag refuses it.
   */
  seedImage(opts: { tag?: string; image?: TestImageName; files?: Record<string, SeedFile> }): Promise<string>
  /** Drops a stored file (by content sha256), as the real service's retention eventually does. */
  forgetFile(sha256: string): boolean
  /** Clears recorded requests and faults; images and operations stay. */
  reset(): void
  /** How commands are sandboxed: as root, or in a user namespace with a full id mapping (see README). */
  sandboxMode: SandboxMode
}
