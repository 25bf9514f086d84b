/**
 * The ConTree service in the terms ConTree's image resolution and step executor work in: images by
 * UUID or tag, files stored by content, spawns followed to their end. Only providers/contree/ sees it;
 * the rest of the action speaks the Provider of ../types.ts.
 */
import type { Platform } from '../../image/image-config.ts'
import type { FilePlacement, LiveWork, LocalFile, OperationOutcome, OperationStatus, OutputSink } from '../types.ts'

/** A file already stored on the service, placed at an absolute path in the sandbox. */
export interface SandboxFile {
  uuid: string
  /** Octal string, e.g. "0644". */
  mode: string
  uid: number
  gid: number
}

export interface SpawnRequest {
  /** Image UUID (already resolved). */
  image: string
  /** Shell expression when `shell` is true, else the executable. */
  command: string
  shell: boolean
  args?: string[]
  env?: Record<string, string>
  cwd?: string
  timeoutSeconds?: number
  disposable: boolean
  files?: Record<string, SandboxFile>
  /** The process's user and group ids (the image's USER); the service default (root) when absent. */
  uid?: number
  gid?: number
  /** Bytes of stdout and of stderr the service keeps (and streams) before it drops the rest. */
  outputLimitBytes?: number
  /** False: the command runs without network access (`RUN --network=none`). */
  network?: boolean
}

/** Turns placements into the spawn's file map once the service holds every file. */
export function toSandboxFiles(placement: FilePlacement, ids: ReadonlyMap<string, string>): Record<string, SandboxFile> {
  const files: Record<string, SandboxFile> = {}
  for (const [sandboxPath, { file, mode, uid, gid }] of Object.entries(placement)) {
    const uuid = ids.get(file.sha256)
    if (!uuid) throw new Error(`internal: ${file.absPath} (${file.sha256}) was not stored before use`)
    files[sandboxPath] = { uuid, mode, uid, gid }
  }
  return files
}

/** Called the moment a remote operation exists, before anything else happens to it. */
export type OperationStarted = (operationId: string) => void

export interface StartOptions {
  /** Human label for logs and the state file: "run", "import python:3.12", "step 2/5". */
  label: string
  signal?: AbortSignal
  /**
   * How long the operation may take from the moment it is created, queue time included. Past it the
   * action stops waiting, cancels the operation and fails with an {@link OperationInterruptedError}.
   */
  deadlineMs?: number
}

/** What ConTree's image resolution and build executor ask of the service. */
export interface ContreeServiceApi {
  readonly name: string
  /**
   * Who the token acts for, as the service names it (never the token or anything derived from it):
   * cache entries are scoped by it so two accounts on one endpoint never share image ids.
   */
  accountId(signal?: AbortSignal): Promise<string>
  /** The platform the service's sandboxes run (registry images are read for it; Dockerfiles build for it). */
  readonly platform: Platform
  /** UUID of an existing image: a UUID is checked, a tag is looked up exactly (never by prefix). Null when absent. */
  findImage(ref: { uuid: string } | { tag: string }, signal?: AbortSignal): Promise<string | null>
  imageExists(uuid: string, signal?: AbortSignal): Promise<boolean>
  tagImage(uuid: string, tag: string, signal?: AbortSignal): Promise<void>
  /**
   * Makes sure the service holds these files; uploads only what it lacks. Returns sha256 → remote
   * file id. Files in `known` (ids remembered from an earlier successful build) are not probed.
   */
  ensureFiles(
    files: readonly LocalFile[],
    signal?: AbortSignal,
    known?: ReadonlyMap<string, string>,
  ): Promise<{ ids: Map<string, string>; uploaded: number; uploadedBytes: number; probed: number }>
  /** Stores bytes fetched elsewhere (e.g. `ADD <url>`), returning the remote file id. */
  storeBytes(bytes: Uint8Array, signal?: AbortSignal): Promise<string>
  /** The bytes of one file of an image; null when it has no such file. */
  readImageFile(image: string, path: string, signal?: AbortSignal): Promise<Uint8Array | null>
  /** A tar stream of a path (file or directory) of an image, member names relative to "/"; null when absent. */
  readImageTree(image: string, path: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array> | null>
  /** Runs a command, streaming its output to `sink`, until the operation ends. */
  run(request: SpawnRequest, sink: OutputSink, options: StartOptions): Promise<OperationOutcome>
  /** Imports a registry image, streaming progress to `sink`. */
  importImage(
    request: { reference: string; credentials?: { username: string; password: string }; tag?: string },
    sink: OutputSink,
    options: StartOptions,
  ): Promise<OperationOutcome>
  /** Current status of an operation; null when the service does not know it. */
  operationStatus(operationId: string, signal?: AbortSignal): Promise<OperationStatus | null>
  /** Asks the service to stop a piece of live work. Resolves to a short description of what happened. */
  cancel(work: LiveWork, timeoutMs: number): Promise<string>
  /** For the post step: is this work still running? null when the service does not know it. */
  isAlive(work: LiveWork, signal?: AbortSignal): Promise<boolean | null>
}
