/**
 * Together Sandbox wire types: the management API ("Bartender", api-openapi.json), the image builder
 * (no spec; what both SDK clients send and read) and the in-sandbox agent ("Pint",
 * sandbox-openapi.json). Field names are the service's. Nothing outside providers/together/ imports
 * this file.
 */

/** String→string labels; keys ≤ 59 of [A-Za-z0-9._-], starting and ending with a letter or digit. */
export type Tags = Record<string, string>

export type Architecture = 'amd64' | 'arm64'

export interface Snapshot {
  id: string
  organization_id: string | null
  project_id: string
  byte_size: number
  tags: Tags
  ttl: number | null
  memory: boolean
  created_at: string
  /** Null while the snapshot is active; a retired snapshot cannot start sandboxes. */
  retired_at: string | null
  updated_at: string
}

/** One alias of a snapshot (`GET /snapshots/{id}/aliases`). */
export interface SnapshotAlias {
  snapshot_id: string
  alias: string
  created_at: string
}

export interface CreateSnapshotBody {
  image: string
  architecture?: Architecture
  ttl?: number
  tags?: Tags
}

export interface Page<T> {
  data: T[]
  /** Null at the end. */
  next_cursor: string | null
}

export type SandboxStatus = 'starting' | 'running' | 'terminating' | 'terminated' | 'failed_to_start' | 'recovering' | 'unrecovered'

export type SandboxStatusReason =
  | 'cold_start_requested'
  | 'restore_requested'
  | 'cold_started'
  | 'restored'
  | 'out_of_capacity'
  | 'internal_error'
  | 'autoterminated'
  | 'termination_requested'
  | 'crashed'
  | 'oom_killed'
  | 'evicted'
  | 'node_lost'
  | 'cluster_lost'

export interface TerminationSnapshot {
  aliases?: string[]
  ttl?: number
  tags?: Tags
}

export interface Sandbox {
  id: string
  organization_id: string | null
  project_id: string
  snapshot_id: string
  cpu: number
  memory_bytes: number
  /** url and token are null unless the sandbox is running. */
  agent: { version: string | null; token: string | null; url: string | null }
  ttl: number | null
  tags: Tags
  termination_policy: { snapshot: TerminationSnapshot } | null
  status: SandboxStatus
  status_reason: SandboxStatusReason | string
  created_at: string
  started_at: string | null
  terminated_at: string | null
  updated_at: string
}

export interface CreateSandboxBody {
  snapshot_id?: string
  snapshot_alias?: string
  cpu?: number
  memory_bytes?: number
  ttl?: number
  tags?: Tags
  /** Omitted: ephemeral (no snapshot at termination). */
  termination_policy?: { snapshot: TerminationSnapshot }
}

/** The management API's error body. */
export interface ApiErrorBody {
  code?: string
  message?: string
  errors?: Array<{ parameter?: string; code?: string; message?: string }>
}

/** Builder: the answer to `POST /builds`. */
export interface BuildSubmitted {
  build_id?: string
}

/** Builder: `GET /builds/{id}`. The SDKs read only `image_ref`; the rest is read when present. */
export interface BuildStatus {
  image_ref?: string
  status?: string
  error?: string
}

/** Builder log stream control frames (the `data` of an event that is JSON). */
export interface BuildLogControl {
  done?: boolean
  error?: unknown
}

export interface CreateExecBody {
  command: string
  args: string[]
  autostart?: boolean
  pty?: boolean
  cwd?: string
  env?: Record<string, string>
  user?: string
}

export interface ExecItem {
  id: string
  command: string
  args: string[]
  /** The agent's words, e.g. CREATED, RUNNING, EXITED, STOPPING, STOPPED. */
  status: string
  pid: number
  pty: boolean
  /** Negative while the process has not exited. */
  exitCode: number
  user?: string
}

/** One frame of `GET /api/v1/stream/execs/{id}/io`. */
export interface ExecOutputFrame {
  type: 'stdout' | 'stderr'
  output: string
  sequence: number
  timestamp?: string
  /** Present (and ≥ 0) only on the frame that ends the exec. */
  exitCode?: number
}

export interface FileInfo {
  name: string
  path: string
  isDir: boolean
  size: number
  modTime: string
}

export interface PortsList {
  ports: Array<{ port: number; address: string }>
}
