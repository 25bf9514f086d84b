/**
 * The provider boundary: the action's own language for remote work (design.md "Two services, one
 * action"). A provider owns how its service builds an image and how it places and runs a command;
 * main and post only ask for an image, a run, and the cancellation of live work. Vendor wire types and
 * vendor words stay inside providers/<name>/.
 */
import type { RemoteWorkRegistry } from '../cancel.ts'
import type { LiveWork, ProviderName } from '../state.ts'

export type { LiveWork, ProviderName }

export type OperationStatus = 'PENDING' | 'ASSIGNED' | 'EXECUTING' | 'SUCCESS' | 'FAILED' | 'CANCELLED'

export const TERMINAL_STATUSES: ReadonlySet<OperationStatus> = new Set(['SUCCESS', 'FAILED', 'CANCELLED'])

export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.has(status as OperationStatus)
}

/** What became of one remote operation, as far as the action cares. */
export interface OperationOutcome {
  operationId: string
  status: OperationStatus
  /** Exit code of the main process; null when none was reported (e.g. killed, or an import). */
  exitCode: number | null
  timedOut: boolean
  /** Service-side error text for FAILED/CANCELLED. */
  error: string | null
  resultImage: string | null
  durationMs: number
  /** Things worth a warning that did not change the outcome (output truncated, output recovered from the record). */
  notices?: string[]
}

/** Receives the remote output of one operation as it streams. */
export interface OutputSink {
  /** `chunk` is valid only during the call (producers reuse its memory): copy what you keep. */
  write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void
  /**
   * Backpressure: a promise when the sink wants the producer to wait before writing more (its
   * destination is full), undefined when it can take more now. Producers await it after writing.
   */
  ready?(): Promise<void> | undefined
  /** A line of the action's own inside the operation's output (e.g. "output truncated"), shown as written. */
  note?(text: string): void
}

/** A local file to place in the sandbox, already hashed. */
export interface LocalFile {
  absPath: string
  size: number
  /** Hex sha256 of the content. */
  sha256: string
}

/** Files to place in the sandbox: absolute sandbox path → local file, mode and owner. */
export type FilePlacement = Record<string, { file: LocalFile; mode: string; uid: number; gid: number }>

/**
 * An operation exists on the service, but the action lost track of it before it ended: a stream it
 * could not read, its deadline, an unexpected answer. The caller records what is known and cancels it.
 */
export class OperationInterruptedError extends Error {
  readonly operationId: string
  readonly label: string
  /** The service's status when the action lost track of it; null when it could not be read. */
  readonly lastStatus: OperationStatus | null

  constructor(init: { operationId: string; label: string; lastStatus: OperationStatus | null; message: string; cause?: unknown }) {
    super(init.message, { cause: init.cause })
    this.name = 'OperationInterruptedError'
    this.operationId = init.operationId
    this.label = init.label
    this.lastStatus = init.lastStatus
  }
}

/**
 * A preview was not brought up because a newer run's preview of the same pull request replaced it
 * first (two runs racing without a concurrency group): not a failure of this run, and nothing to report.
 */
export class PreviewSupersededError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PreviewSupersededError'
  }
}

/** Where a provider records live work the moment its id exists, and marks it done once it ended. */
export type LiveWorkRegistry = Pick<RemoteWorkRegistry, 'add' | 'finish'>

/** One log group: remote output goes in (behind a stop-commands window), a status line closes it. */
export interface LogGroup extends OutputSink {
  note(text: string): void
  end(status: string): void
  /** The last printed lines, for a failure report outside the (collapsed) group. */
  tail(): string[]
}

/** Where a provider prints its groups: the step's log, or a fan-out run's buffer. */
export interface LogGroups {
  open(title: string): LogGroup
  /** Repeats `lines` outside any group and returns `message` ready for one annotation. */
  reportFailure(lines: readonly string[], message: string): string
}

/** One remote operation for the run summary, with what its words need. */
export interface ReportedOperation {
  label: string
  outcome: OperationOutcome
  /** A command ran (run, build step): a missing exit code means it was killed. Imports have none. */
  expectsExitCode: boolean
}

/** What a provider adds to the job summary beyond the run itself. */
export interface StepReport {
  operations: ReportedOperation[]
  /** Markdown sections, e.g. a build's step table. */
  sections: string[]
}

/** The shared machinery a provider works with. */
export interface ProviderContext {
  /** `log.open(title)` → a group per remote build step, import or command. */
  log: LogGroups
  /** Aborted on SIGINT/SIGTERM: stop waiting. A create already in flight is never cut off. */
  signal: AbortSignal
  registry: LiveWorkRegistry
  report: StepReport
  debug(message: string): void
}

export type ImageRequest =
  | {
      kind: 'build'
      /** Absolute paths. */
      dockerfile: string
      context: string
      buildArgs: Record<string, string>
      target?: string
      noCache: boolean
      /** Bound on the whole build, from submit to a usable image. */
      deadlineMs?: number
      /** Give it no name (no `tag` input, no alias): the caller moves the name itself once the image exists. */
      unnamed?: boolean
    }
  /** A registry reference, e.g. docker.io/library/python:3.12. */
  | {
      kind: 'image'
      reference: string
      noCache: boolean
      deadlineMs?: number
      /** The manifest digest the caller already resolved (a refresh): used as is, the registry is not asked again. */
      manifestDigest?: string
      /** Give it no name (no `tag` input, no alias): the caller moves the name itself once the image exists. */
      unnamed?: boolean
    }
  /** An image the service already holds, named as the service names it (ConTree: UUID or tag; Together: snapshot id or @alias). */
  | { kind: 'existing'; ref: string }

export interface PreparedImage {
  /** What a run starts from (ConTree: the image UUID; Together: the snapshot id). */
  id: string
  /** The digest it was built or resolved from, when known. */
  digest?: string
  cacheHit: boolean
  /** The name given to it (ConTree tag, Together alias), when one was. */
  tag?: string
  /** Step outputs, e.g. image-uuid, snapshot-id, image-ref, build-id. */
  outputs: Record<string, string>
  /** What a command in this image starts with when the run does not say (a build's final ENV, WORKDIR, USER). */
  defaults?: { env: Record<string, string>; cwd: string; uid: number; gid: number }
  /** The registry manifest digest a registry image was made from (`digest` may be derived from it). */
  upstreamDigest?: string
}

export interface RunRequest {
  /** A shell expression when `shell`, else the executable. */
  command: string
  shell: boolean
  args?: string[]
  env: Record<string, string>
  cwd?: string
  timeoutSeconds: number
  uploads?: FilePlacement
  /** Leave the sandbox running after the step (a preview); it is then never terminated by the action. */
  keepAlive: boolean
  /** The service terminates the sandbox by itself after this long. */
  ttlSeconds?: number
  /** Bound on the whole run from the sandbox's creation, start-up included. */
  deadlineMs: number
  /** Group title and label in state and summaries (default "Run: <command>" and "run"). */
  title?: string
  label?: string
  /** ConTree: discard the sandbox filesystem afterwards. */
  disposable?: boolean
  /** ConTree: bytes of stdout and of stderr the service keeps. */
  outputLimitBytes?: number
}

export interface RunOutcome {
  status: 'SUCCESS' | 'FAILED' | 'CANCELLED'
  exitCode: number | null
  timedOut: boolean
  error: string | null
  durationMs: number
  /** Step outputs, e.g. sandbox-id, exec-id. */
  outputs: Record<string, string>
  /** The last lines of the command's output, for a failure report outside its (collapsed) group. */
  tail: string[]
  /** The remote id of what ran (ConTree operation, Together sandbox), for summaries. */
  id: string
  /** ConTree: the sandbox filesystem after the run, unless disposable. */
  resultImage?: string | null
  notices?: string[]
}

/** Which pull request's preview, as tags and names on the service record it. */
export interface PreviewTarget {
  /** The preview's name: the ConTree tag, the Together `preview` tag, the comment's marker. */
  name: string
  pullRequest: number
  /** `owner/name`. */
  repository: string
}

export interface PreviewRequest extends PreviewTarget {
  /** The commit the preview is built from (the PR head). */
  commit: string
  /** Together: the sandbox's lifetime on the service. */
  ttlSeconds?: number
  /** A command started in the preview and left running (a server). */
  start?: { command: string; env: Record<string, string>; cwd?: string }
  /** A TCP port that must be open before the preview counts as up. */
  waitForPort?: number
  /** Bound on bringing the new preview up: its start, the start command, the port. */
  deadlineMs: number
}

/** One thing on the service that makes up a preview: a running sandbox, or a name an image holds. */
export interface PreviewPart {
  /** For people: "sandbox", "tag". */
  what: string
  id: string
}

export interface PreviewOutcome {
  /** What now makes up the preview. */
  parts: PreviewPart[]
  imageId?: string
  snapshotId?: string
  sandboxId?: string
  /** When the service ends it by itself. */
  expiresAt?: Date
  ports: Array<{ port: number }>
  /** Commands that reach it (the service's own CLI), never an invented URL. */
  reach: string
  /** Earlier previews of the PR this one replaced (ended, or their name taken away). */
  replaced: PreviewPart[]
  /** Earlier previews that could not be ended (their ttl still ends them); for a warning. */
  leftBehind: string[]
  /** Step outputs, e.g. sandbox-id. */
  outputs: Record<string, string>
}

/** What a name (ConTree tag, Together alias) points at, and the upstream digest it was made from. */
export interface NamedImage {
  id: string
  /** The registry manifest digest it was made from; undefined when nobody recorded it. */
  upstreamDigest?: string
  /** Since when the name has pointed at an image of that digest. */
  since?: Date
}

export interface Provider {
  readonly name: ProviderName
  /** The service's base URL, for summaries. */
  readonly endpoint: string
  prepareImage(request: ImageRequest, ctx: ProviderContext): Promise<PreparedImage>
  run(image: PreparedImage, request: RunRequest, ctx: ProviderContext): Promise<RunOutcome>
  /** Cancels one piece of live work recorded in state (signals, post); short and bounded. Resolves to what happened. */
  cancel(work: LiveWork, timeoutMs: number): Promise<string>
  /** For post: is this work still alive? null when the service cannot tell. */
  isAlive(work: LiveWork, signal: AbortSignal): Promise<boolean | null>

  // PR previews (mode preview / teardown). A provider without them cannot keep previews.
  /**
   * Brings up the PR's preview from `image` and only then retires the earlier ones (found on the
   * service, not remembered). A signal before the new preview is up leaves the earlier one as it was
   * and nothing half-made behind.
   */
  replacePreview?(image: PreparedImage, request: PreviewRequest, ctx: ProviderContext): Promise<PreviewOutcome>
  /** Every part of the PR's previews the service still holds. */
  findPreviews?(target: PreviewTarget, signal: AbortSignal): Promise<PreviewPart[]>
  /** Removes one part; already gone is no error ('gone'). Bounded by `timeoutMs`. */
  removePreview?(target: PreviewTarget, part: PreviewPart, timeoutMs: number): Promise<'removed' | 'gone'>

  // Names that follow an upstream image (mode refresh).
  /** What `name` points at now, with the upstream digest of `reference` it was made from when known. */
  findNamed?(name: string, reference: string, signal: AbortSignal): Promise<NamedImage | null>
  /**
   * Points `name` at `image` (or at a copy of it, where the service allows one name per image); never
   * leaves the name pointing nowhere on the way. Returns what holds it now and what held it before.
   */
  moveName?(name: string, image: PreparedImage, ctx: ProviderContext): Promise<{ holderId: string; previousId: string | null }>
  /** Remembers that `name` now holds an image of `upstreamDigest` (where the service itself cannot tell). */
  recordNamed?(name: string, reference: string, named: NamedImage, signal: AbortSignal): Promise<void>
  /** Retires an image no name needs any more (Together: the snapshot); resolves to what happened. */
  retireImage?(id: string, signal: AbortSignal): Promise<string>
}
