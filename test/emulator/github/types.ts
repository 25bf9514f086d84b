// Public types of the GitHub REST emulator (issue comments, deployments, pulls).

/** A permission level as in a workflow's `permissions:` block. */
export type PermissionLevel = 'none' | 'read' | 'write'

/** The scopes the emulated routes check. A PR comment may be written with `issues` or `pull-requests`. */
export type PermissionScope = 'issues' | 'pull-requests' | 'deployments' | 'contents'

export interface TokenGrant {
  /** Missing scopes are `write` (a default GITHUB_TOKEN with write permissions). */
  permissions?: Partial<Record<PermissionScope, PermissionLevel>>
  /** `owner/name` the token may see (like GITHUB_TOKEN, scoped to one repository); all when absent. */
  repositories?: string[]
  /** The author of what this token writes (default `github-actions[bot]`). */
  login?: string
  /** Requests allowed per hour before the primary rate limit answers (default 1000, GITHUB_TOKEN's). */
  rateLimit?: number
}

/** A read-only token: what a `pull_request` run from a fork gets. */
export const READ_ONLY: TokenGrant = {
  permissions: { issues: 'read', 'pull-requests': 'read', deployments: 'read', contents: 'read' },
}

export interface PullSeed {
  number: number
  title?: string
  headRef: string
  headSha: string
  baseRef?: string
  /** Whether the head repository is a fork (head.repo.fork). */
  fork?: boolean
  state?: 'open' | 'closed'
  /** Author login. */
  user?: string
}

export interface RepoSeed {
  owner: string
  name: string
  /** Numeric id used in `/repositories/{id}` pagination links; assigned when absent. */
  id?: number
  defaultBranch?: string
  /** Branch name → head SHA, for resolving a deployment's `ref`. */
  branches?: Record<string, string>
  pulls?: PullSeed[]
  /** Issue numbers that are plain issues (comments work on them as on PRs). */
  issues?: number[]
}

export interface GitHubEmulatorOptions {
  /** Token → what it may do. Every API request needs one of these tokens (401 otherwise). */
  tokens: Record<string, TokenGrant>
  repos?: RepoSeed[]
  /** Serve the API under this prefix, as GitHub Enterprise Server does (`/api/v3`). */
  pathPrefix?: string
  /** Where `html_url`s point; default https://github.com, or the emulator's origin with a prefix. */
  serverUrl?: string
  /** Milliseconds since the epoch; drives timestamps and the rate-limit window (default Date.now). */
  now?: () => number
  /** Loopback port (default 0 = any free port). */
  port?: number
}

/** What a request is matched on by faults and gates. */
export interface RequestMatch {
  /** HTTP method (case-insensitive); any when absent. */
  method?: string
  /** Matched against the route path: prefix removed, `/repositories/{id}` rewritten to `/repos/{o}/{r}`. */
  path?: RegExp
  /** Only requests carrying this token. */
  token?: string
}

export type GitHubFault =
  /** 403 (or 429) with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` this many seconds ahead. */
  | { kind: 'primary-rate-limit'; resetAfterSeconds: number; status?: 403 | 429 }
  /** 403 (or 429) "You have exceeded a secondary rate limit", with `retry-after` when given. */
  | { kind: 'secondary-rate-limit'; retryAfterSeconds?: number; status?: 403 | 429 }
  /**
   * Any status (5xx, 401…) with a GitHub-shaped body. With `afterProcessing` the request is carried
   * out first and only the answer is lost, as when a gateway times out on a write that happened.
   */
  | { kind: 'status'; status: number; message?: string; headers?: Record<string, string>; afterProcessing?: boolean }
  /** The connection is destroyed without an answer. */
  | { kind: 'drop' }

export interface FaultRule extends RequestMatch {
  /** How many matching requests get the fault (default 1). */
  times?: number
  fault: GitHubFault
}

export interface RecordedRequest {
  method: string
  /** The path as received, prefix included. */
  rawPath: string
  /** The route path the faults and gates match. */
  path: string
  query: Record<string, string>
  /** The token presented (test tokens are not secrets), or undefined. */
  token: string | undefined
  /** Parsed JSON body of a write. */
  body?: unknown
  /** The status answered (set once the answer is written). */
  status?: number
  /** The kind of fault injected, if any. */
  fault?: GitHubFault['kind']
}

export interface User {
  login: string
  id: number
  node_id: string
  type: 'Bot' | 'User'
  site_admin: false
  html_url: string
}

export interface IssueComment {
  id: number
  node_id: string
  url: string
  html_url: string
  issue_url: string
  body: string
  user: User
  created_at: string
  updated_at: string
  author_association: string
  performed_via_github_app: null | { id: number; slug: string; name: string }
}

export type DeploymentState = 'error' | 'failure' | 'inactive' | 'in_progress' | 'queued' | 'pending' | 'success'

export interface Deployment {
  id: number
  node_id: string
  url: string
  sha: string
  ref: string
  task: string
  payload: unknown
  original_environment: string
  environment: string
  description: string | null
  creator: User
  created_at: string
  updated_at: string
  statuses_url: string
  repository_url: string
  transient_environment: boolean
  production_environment: boolean
}

export interface DeploymentStatus {
  id: number
  node_id: string
  url: string
  state: DeploymentState
  creator: User
  description: string
  environment: string
  target_url: string
  log_url: string
  environment_url: string
  created_at: string
  updated_at: string
  deployment_url: string
  repository_url: string
}

/** A rate limit as GitHub words it, for tests that want the exact body. */
export const SECONDARY_RATE_LIMIT_MESSAGE =
  'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.'
export const NOT_ACCESSIBLE_MESSAGE = 'Resource not accessible by integration'
