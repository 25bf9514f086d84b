/**
 * The provider boundary: the action's own language for remote work. Vendor wire types stay inside
 * providers/<name>/; everything outside speaks these types.
 */

export type OperationStatus = 'PENDING' | 'ASSIGNED' | 'EXECUTING' | 'SUCCESS' | 'FAILED' | 'CANCELLED'

export const TERMINAL_STATUSES: ReadonlySet<OperationStatus> = new Set(['SUCCESS', 'FAILED', 'CANCELLED'])

export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.has(status as OperationStatus)
}

/** A file already stored on the service, placed at an absolute path in the sandbox. */
export interface SandboxFile {
  uuid: string
  /** Octal string, e.g. "0644". */
  mode: string
  uid: number
  gid: number
}

export interface RunRequest {
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
}

/** Receives the remote output of one operation as it streams. */
export interface OutputSink {
  write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void
}
