/**
 * Failures of GitHub API calls, worded for the workflow log: what did not happen, what GitHub said,
 * and what to change. Messages are built from the call's purpose, the status and GitHub's `message`
 * field only; request headers (where the token travels) are never read, so no token can leak.
 */
import { errorMessage } from '../errors.ts'
import { truncateText } from '../output/markdown-escape.ts'
import type { RateLimitWait } from './rate-limit.ts'

/** What a call was for, so a failure names what did not happen and what the job needs. */
export interface GitHubCallPurpose {
  /** An infinitive phrase: "update the preview comment on acme/shop#7". */
  what: string
  /** The `permissions:` entry the job needs for it, e.g. `pull-requests: write`. */
  permission: string
}

/** The parts of an Octokit RequestError this module relies on (duck-typed: no import of its class). */
export interface GitHubFailure {
  status: number
  headers: Readonly<Record<string, string | number | undefined>>
  /** GitHub's `message` field, when the body had one. */
  githubMessage: string | undefined
}

const MAX_GITHUB_MESSAGE_CHARS = 300

/** Reads status, headers and GitHub's message from a thrown Octokit error; undefined for other errors. */
export function readGitHubFailure(error: unknown): GitHubFailure | undefined {
  if (error === null || typeof error !== 'object') return undefined
  const candidate = error as { status?: unknown; response?: { headers?: unknown; data?: unknown } }
  if (typeof candidate.status !== 'number' || candidate.response === undefined) return undefined
  const data = candidate.response.data
  const message = data !== null && typeof data === 'object' && typeof (data as { message?: unknown }).message === 'string'
    ? (data as { message: string }).message
    : typeof data === 'string' && data !== '' ? data : undefined
  const headers = (candidate.response.headers ?? {}) as GitHubFailure['headers']
  return { status: candidate.status, headers, githubMessage: message === undefined ? undefined : oneLine(message) }
}

function oneLine(text: string): string {
  return truncateText(text.replace(/\s+/g, ' ').trim(), MAX_GITHUB_MESSAGE_CHARS)
}

/** A GitHub answer the caller could not use. `status` is 0 when no answer arrived. */
export class GitHubApiError extends Error {
  readonly status: number
  readonly githubMessage: string | undefined

  constructor(message: string, status: number, githubMessage: string | undefined, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'GitHubApiError'
    this.status = status
    this.githubMessage = githubMessage
  }
}

/** A 403 that is not a rate limit: the token may not do this. */
export class GitHubPermissionError extends GitHubApiError {
  readonly permission: string

  constructor(purpose: GitHubCallPurpose, githubMessage: string | undefined) {
    super(
      `Could not ${purpose.what}: GitHub answered 403 (${githubMessage ?? 'Forbidden'}). ` +
        `The job needs \`permissions: ${purpose.permission}\` in the workflow. ` +
        'A `pull_request` run from a fork always gets a read-only GITHUB_TOKEN, whatever the workflow asks for; ' +
        'to write there, do it from a separate `workflow_run` workflow.',
      403,
      githubMessage,
    )
    this.name = 'GitHubPermissionError'
    this.permission = purpose.permission
  }
}

/** GitHub kept answering with a rate limit longer, or more often, than the caller may wait. */
export class GitHubRateLimitError extends GitHubApiError {
  readonly kind: RateLimitWait['kind']
  /** The wait GitHub asked for in its last answer. */
  readonly requestedWaitMs: number
  /** What was already waited for this operation. */
  readonly waitedMs: number
  readonly retries: number

  constructor(
    purpose: GitHubCallPurpose,
    status: number,
    limit: RateLimitWait,
    spent: { waitedMs: number; retries: number },
    reason: string,
    githubMessage: string | undefined,
  ) {
    const asked = limit.source === 'default' ? 'gives no time (GitHub advises at least a minute)' : `asks to wait ${seconds(limit.waitMs)} (${limit.source})`
    super(
      `Could not ${purpose.what}: GitHub's ${limit.kind} rate limit is in force (HTTP ${status}) and it ${asked}; ` +
        `${reason}, after ${spent.retries} ${spent.retries === 1 ? 'retry' : 'retries'} and ${seconds(spent.waitedMs)} of waiting.`,
      status,
      githubMessage,
    )
    this.name = 'GitHubRateLimitError'
    this.kind = limit.kind
    this.requestedWaitMs = limit.waitMs
    this.waitedMs = spent.waitedMs
    this.retries = spent.retries
  }
}

export function seconds(ms: number): string {
  const s = ms / 1000
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`
}

/** Turns a final failure (after any retries) into an error whose message says what to do. */
export function describeGitHubFailure(purpose: GitHubCallPurpose, error: unknown): GitHubApiError {
  const failure = readGitHubFailure(error)
  if (failure === undefined) {
    return new GitHubApiError(`Could not ${purpose.what}: ${oneLine(errorMessage(error))}`, 0, undefined, { cause: error })
  }
  const said = failure.githubMessage
  switch (failure.status) {
    case 401:
      return new GitHubApiError(
        `Could not ${purpose.what}: GitHub rejected the token (HTTP 401: ${said ?? 'Unauthorized'}). Check the \`github-token\` input.`,
        401,
        said,
      )
    case 403:
      return new GitHubPermissionError(purpose, said)
    case 404:
      return new GitHubApiError(
        `Could not ${purpose.what}: GitHub answered 404 (${said ?? 'Not Found'}): it does not exist, or the token cannot see the repository.`,
        404,
        said,
      )
    default:
      return new GitHubApiError(`Could not ${purpose.what}: GitHub answered HTTP ${failure.status}${said ? ` (${said})` : ''}.`, failure.status, said)
  }
}
