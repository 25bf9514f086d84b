/**
 * What main and post need from any sandbox service, in the action's own words (design.md "Two
 * services, one action"). A provider owns how its service builds an image and how it places and runs
 * a command; main only asks for an image, a run, and the cancellation of live work. Vendor words stay
 * inside providers/<name>/.
 *
 * This supersedes the ConTree-shaped Provider of types.ts once ConTree moves onto it.
 */
import type { RemoteWorkRegistry } from '../cancel.ts'
import type { ImageCache } from '../image.ts'
import type { RemoteLog } from '../output/remote-log.ts'
import type { LiveWork, ProviderName } from '../state.ts'
import type { FilePlacement } from './types.ts'

export type { LiveWork, ProviderName }

/** Where a provider records live work the moment its id exists, and marks it done once it ended. */
export type LiveWorkRegistry = Pick<RemoteWorkRegistry, 'add' | 'finish'>

/** The shared machinery a provider works with. */
export interface ProviderContext {
  /** `log.open(title)` → a group (an OutputSink) per remote build or command. */
  log: RemoteLog
  /** Aborted on SIGINT/SIGTERM: stop waiting. A create already in flight is never cut off. */
  signal: AbortSignal
  registry: LiveWorkRegistry
  /** The Actions-cache digest cache; a provider whose service can be asked by digest may ignore it. */
  cache: ImageCache
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
    }
  /** A registry reference, e.g. docker.io/library/python:3.12. */
  | { kind: 'image'; reference: string; noCache: boolean; deadlineMs?: number }
  /** An image the service already holds, named as the service names it (Together: snapshot id or alias). */
  | { kind: 'existing'; ref: string }

export interface PreparedImage {
  /** What a run starts from (Together: the snapshot id). */
  id: string
  /** The digest it was built or resolved from, when known. */
  digest?: string
  cacheHit: boolean
  /** Step outputs, e.g. snapshot-id, image-ref, build-id. */
  outputs: Record<string, string>
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
}

export interface Provider {
  readonly name: ProviderName
  prepareImage(request: ImageRequest, ctx: ProviderContext): Promise<PreparedImage>
  run(image: PreparedImage, request: RunRequest, ctx: ProviderContext): Promise<RunOutcome>
  /** Cancels one piece of live work recorded in state (signals, post); short and bounded. Resolves to what happened. */
  cancel(work: LiveWork, timeoutMs: number): Promise<string>
  /** For post: is this work still alive? null when the service cannot tell. */
  isAlive(work: LiveWork, signal: AbortSignal): Promise<boolean | null>
}
