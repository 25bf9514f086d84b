// Public types of the Together Sandbox emulator. Wire shapes follow shared/protocols/together-v1.md and the
// OpenAPI documents of togethercomputer/together-sandbox (api-openapi.json, sandbox-openapi.json).
import type { SandboxMode } from '../contree/sandbox.ts'
import type { AppliedFault as SharedAppliedFault, BaseFaultRule, FaultController as SharedFaultController } from '../shared/fault-rules.ts'
import type { TarEntryInput } from '../tar-writer.ts'
import type { TestImageName } from '../test-images.ts'

export type { SandboxMode }

export interface TogetherEmulatorOptions {
  /** Bearer token of the management API and the builder (default 'test-api-key'). */
  apiKey?: string
  /** `project_id` of everything created; also names the registry namespace (default 'proj_emulator'). */
  projectId?: string
  /** How long a sandbox stays `starting` before it is `running` (default 20 ms). */
  startDelayMs?: number
  /** How long a sandbox stays `terminating` (default 10 ms). */
  terminateDelayMs?: number
  /** `POST /sandboxes/{id}/wait` answers with the current status after this long, settled or not (default 10 s). */
  waitTimeoutMs?: number
  /** Interval of `: keepalive` comments on idle event streams (default 1000 ms). */
  keepaliveMs?: number
  /** Gzip bodies when the request accepts it (default true). */
  gzip?: boolean
  /** `user` of an exec that names none (default '1000:1000', the SDK docs' default). */
  defaultExecUser?: string
  /** `cwd` of an exec that names none, and the base of relative agent paths (default '/'). */
  workspaceDir?: string
  /** Registry host part of the `image_ref`s the builder produces (default 'registry.together.emulator'). */
  registryHost?: string
  /** Where image trees, contexts and sandbox roots live; default a temp dir removed on close(). */
  dataDir?: string
  /** The catalogue image (test-images.ts) seeded as `busybox:latest` (default 'base'). */
  defaultImage?: TestImageName
  /** Where the start-up warning goes when the host allows no /proc in the sandbox (default console.warn). */
  log?: (line: string) => void
}

export type Surface = 'api' | 'builder' | 'agent'

export type FaultAction =
  /** Answers that status without doing anything (body: the surface's error shape unless given). */
  | { kind: 'status'; status: number; retryAfter?: string; body?: unknown }
  /** Performs the request for real, then answers that status instead of its result. */
  | { kind: 'status-after'; status: number; retryAfter?: string; body?: unknown }
  /** Destroys the socket before anything is written. */
  | { kind: 'drop-before-response' }
  /** Never answers (released by close()). */
  | { kind: 'hang' }
  /** Event streams: N events, then half of the next one, then the socket is destroyed. */
  | { kind: 'cut-stream'; afterEvents: number }
  /** Event streams: N events, then a clean end without the terminal event. */
  | { kind: 'end-stream'; afterEvents: number }
  /** Build logs: N lines, then `{"error": message}`; the build really fails. */
  | { kind: 'error-event'; afterEvents: number; message?: string }
  /** `POST /v1/sandboxes`: this sandbox stays `starting` for delayMs. */
  | { kind: 'slow-start'; delayMs: number }
  /** `POST /v1/sandboxes`: this sandbox ends `failed_to_start` with that reason (default internal_error). */
  | { kind: 'failed-to-start'; reason?: 'internal_error' | 'out_of_capacity' }

/** A rule's `path` is matched against the pathname as the server saw it (agents: `/agents/<id>/api/v1/…`). */
export interface FaultRule extends BaseFaultRule<FaultAction> {
  /** Only requests to this server (default any). */
  server?: Surface
}

/** Which request got which fault (shared/fault-rules.ts). */
export type AppliedFault = SharedAppliedFault<FaultAction>

export type FaultController = SharedFaultController<FaultRule, FaultAction>

export interface RecordedRequest {
  server: Surface
  method: string
  /** Pathname, still percent-encoded. */
  path: string
  /** Query parameters in order (repeated keys are kept). */
  query: Array<[string, string]>
  /** Lower-cased header names; the authorization value is replaced by '<redacted>'. */
  headers: Record<string, string>
  /** Bytes of request body received so far. */
  bodyBytes: number
  /** Arrival time, epoch milliseconds. */
  at: number
  /** Response status once sent (absent for dropped, hung or cut responses). */
  status?: number
  /** Kind of the fault applied to this request, if any. */
  fault?: FaultAction['kind']
}

/** Emulator-only: the wire never documents build states. */
export type BuildState = 'running' | 'succeeded' | 'failed' | 'cancelled'

export interface BuildView {
  id: string
  state: BuildState
  imageName: string
  cacheKey: string
  dockerfile: string
  buildArgs: Record<string, string>
  nydus: boolean
  imageRef: string | null
  error: string | null
  /** Log lines so far (without the terminal control event). */
  log: string[]
  /** RUN steps this build executed for real / took from the layer cache. */
  runsExecuted: number
  stepsCached: number
}

export interface SnapshotView {
  id: string
  image: string
  tags: Record<string, string>
  retired: boolean
  aliases: string[]
  /** Directory of the image tree sandboxes copy. */
  dir: string
}

export type SandboxStatus =
  | 'starting'
  | 'running'
  | 'terminating'
  | 'terminated'
  | 'failed_to_start'
  | 'recovering'
  | 'unrecovered'

export interface SandboxView {
  id: string
  snapshotId: string
  status: SandboxStatus
  statusReason: string
  /** Host directory of its root filesystem while it has one. */
  root: string | null
  agentUrl: string | null
  agentToken: string | null
  execs: Array<{ id: string; status: string; pid: number; exitCode: number }>
}

export interface EmulatorCounts {
  builds: { submitted: number } & Record<BuildState, number>
  /** RUN instructions executed for real (a layer-cache hit does not count). */
  runStepsExecuted: number
  /** Build steps served from the layer cache. */
  stepsCached: number
  snapshots: { active: number; retired: number }
  sandboxes: Record<SandboxStatus, number>
  /** Execs whose process has not exited yet. */
  execsRunning: number
  /** Processes still alive that a build or a sandbox started (a /proc scan of their process groups). */
  processesAlive: number
}

/** A file of a seeded image, in tar-writer's shapes: content, mode, numeric uid/gid, directories, symlinks. */
export type SeedFile = TarEntryInput

export interface TogetherEmulator {
  /** Management API base, http://127.0.0.1:PORT (the client appends /v1, as TOGETHER_BASE_URL). */
  apiUrl: string
  /** Builder base, a different origin: http://127.0.0.1:PORT (routes /builds…). */
  builderUrl: string
  /** Base under which every sandbox's agent lives: `${agentsUrl}/agents/<sandbox id>`. */
  agentsUrl: string
  apiKey: string
  /** How commands are sandboxed: as root, or in a user namespace with a full id mapping (contree/README.md). */
  sandboxMode: SandboxMode
  faults: FaultController
  requests: RecordedRequest[]
  builds(): BuildView[]
  snapshots(): SnapshotView[]
  sandboxes(): SandboxView[]
  counts(): EmulatorCounts
  /**
   * Registers an image tree under a reference (`busybox:latest` is normalised to
   * `docker.io/library/busybox:latest`) that FROM lines and snapshot creates can use: a catalogue image
   * (test-images.ts, with its config) and/or files on top, and environment on top of the config's. Without
   * `image` the tree holds only `files` (no shell, no tools). Returns the normalised reference.
   */
  seedImage(opts: { ref: string; image?: TestImageName; files?: Record<string, SeedFile>; env?: Record<string, string> }): Promise<string>
  /** Clears recorded requests and fault rules; builds, snapshots and sandboxes stay. */
  reset(): void
  /** Cancels builds, terminates sandboxes, kills every process, closes the servers, removes temp dirs. */
  close(): Promise<void>
}
