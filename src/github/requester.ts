/**
 * Makes the GitHub API calls of one operation (upsert a comment, report a deployment) through an
 * Octokit from @actions/github's getOctokit, which honours GITHUB_API_URL (GHES), with GitHub's retry
 * rules on top (Octokit itself retries nothing):
 * - a rate limit (403/429 with retry-after, x-ratelimit-remaining: 0, or a secondary-limit message)
 *   is retried after exactly the time GitHub gives, for any method: GitHub did not process it;
 * - a 5xx or a lost connection is retried on the project's ladder for idempotent methods only; a
 *   POST or PATCH may have been carried out (design.md "Retries"), so the caller decides;
 * - the whole operation shares one budget: at most `maxRetries` retries and `maxTotalWaitMs` of
 *   waiting. A wait that would not fit is not started: the error says so at once.
 * Lists are read page by page along GitHub's `link: rel="next"`, each page with the same rules.
 */
import type { getOctokit } from '@actions/github'
import { DEFAULT_DELAYS_MS, ladderDelay } from '../http/retry.ts'
import { realSleep, type Sleep } from '../http/sleep.ts'
import {
  describeGitHubFailure,
  GitHubApiError,
  GitHubRateLimitError,
  readGitHubFailure,
  seconds,
  type GitHubCallPurpose,
} from './errors.ts'
import { nextPageUrl } from './link-header.ts'
import { rateLimitWait, type RateLimitWait } from './rate-limit.ts'

export type GitHubClient = ReturnType<typeof getOctokit>

export interface GitHubRetryOptions {
  /** Retries per operation, over all its calls (default 3). */
  maxRetries?: number
  /** Total waiting per operation, in milliseconds (default 60 s). */
  maxTotalWaitMs?: number
  /** Injected in tests; the real one otherwise. */
  sleep?: Sleep
  /** Milliseconds since the epoch, for `x-ratelimit-reset` (default Date.now). */
  now?: () => number
  /** Aborts a wait (job cancelled). */
  signal?: AbortSignal
  /** Told about every wait before it starts, e.g. core.info. */
  onWait?: (line: string) => void
}

export const DEFAULT_MAX_RETRIES = 3
export const DEFAULT_MAX_TOTAL_WAIT_MS = 60_000
/** A PR with more comments than this (100 per page) is not searched further. */
export const MAX_PAGES = 100

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'PUT', 'DELETE'])

interface ListResponse<T> {
  data: T[]
  headers: { link?: string | undefined }
}

type Delay = { ms: number; limit?: RateLimitWait; status: number }

export class GitHubRequester {
  readonly client: GitHubClient
  private readonly maxRetries: number
  private readonly maxTotalWaitMs: number
  private readonly sleep: Sleep
  private readonly now: () => number
  private readonly options: GitHubRetryOptions
  private retries = 0
  private waitedMs = 0
  private transientRetries = 0

  constructor(client: GitHubClient, options: GitHubRetryOptions = {}) {
    this.client = client
    this.options = options
    this.maxRetries = Math.max(0, options.maxRetries ?? DEFAULT_MAX_RETRIES)
    this.maxTotalWaitMs = Math.max(0, options.maxTotalWaitMs ?? DEFAULT_MAX_TOTAL_WAIT_MS)
    this.sleep = options.sleep ?? realSleep
    this.now = options.now ?? Date.now
  }

  /** Runs `send` (one API request) with the retry rules; a final failure is described for the log. */
  async call<T>(purpose: GitHubCallPurpose, method: string, send: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await send()
      } catch (error) {
        const delay = this.retryDelay(method.toUpperCase(), error)
        if (delay === undefined) throw describeGitHubFailure(purpose, error)
        this.checkBudget(purpose, delay, error)
        this.retries += 1
        this.waitedMs += delay.ms
        this.options.onWait?.(
          delay.limit
            ? `GitHub ${delay.limit.kind} rate limit while trying to ${purpose.what}: waiting ${seconds(delay.ms)} as GitHub asks (${delay.limit.source}).`
            : `GitHub answered HTTP ${delay.status || 'without a response'} while trying to ${purpose.what}: retrying in ${seconds(delay.ms)}.`,
        )
        await this.sleep(delay.ms, this.options.signal)
      }
    }
  }

  /** Every item of a paginated list: the first page from `first`, the rest along `link: rel="next"`. */
  async listAll<T>(purpose: GitHubCallPurpose, first: () => Promise<ListResponse<T>>): Promise<T[]> {
    const origin = new URL(this.client.request.endpoint.DEFAULTS.baseUrl).origin
    let page = await this.call(purpose, 'GET', first)
    const items = [...page.data]
    for (let pages = 1; ; pages++) {
      const next = nextPageUrl(page.headers.link)
      if (next === undefined) return items
      // The token goes with every page: never to a host other than the API's.
      const target = new URL(next, origin)
      if (target.origin !== origin) {
        throw new GitHubApiError(`Could not ${purpose.what}: GitHub's next-page link leads to ${target.origin}, not ${origin}; not following it.`, 0, undefined)
      }
      if (pages >= MAX_PAGES) {
        throw new GitHubApiError(`Could not ${purpose.what}: the list has more than ${MAX_PAGES} pages.`, 0, undefined)
      }
      page = await this.call(purpose, 'GET', () => this.client.request<T[]>({ method: 'GET', url: target.href }))
      items.push(...page.data)
    }
  }

  private retryDelay(method: string, error: unknown): Delay | undefined {
    const failure = readGitHubFailure(error)
    if (failure !== undefined) {
      const limit = rateLimitWait(failure.status, failure.headers, failure.githubMessage ?? '', this.now())
      if (limit !== undefined) return { ms: limit.waitMs, limit, status: failure.status }
      if (failure.status >= 500 && IDEMPOTENT_METHODS.has(method)) return this.ladder(failure.status)
      return undefined
    }
    // Octokit reports a connection that failed as status 500 without a response; an abort is final.
    const transport = error instanceof Error && error.name !== 'AbortError' && (error as { status?: unknown }).status === 500
    return transport && IDEMPOTENT_METHODS.has(method) ? this.ladder(0) : undefined
  }

  private ladder(status: number): Delay {
    return { ms: ladderDelay(DEFAULT_DELAYS_MS, this.transientRetries++), status }
  }

  private checkBudget(purpose: GitHubCallPurpose, delay: Delay, error: unknown): void {
    const left = this.maxTotalWaitMs - this.waitedMs
    const reason =
      this.retries >= this.maxRetries
        ? `giving up: at most ${this.maxRetries} ${this.maxRetries === 1 ? 'retry is' : 'retries are'} allowed`
        : delay.ms > left
          ? `giving up now: that is more than the ${seconds(left)} left of the ${seconds(this.maxTotalWaitMs)} this step may wait`
          : undefined
    if (reason === undefined) return
    if (delay.limit === undefined) throw describeGitHubFailure(purpose, error)
    const spent = { waitedMs: this.waitedMs, retries: this.retries }
    throw new GitHubRateLimitError(purpose, delay.status, delay.limit, spent, reason, readGitHubFailure(error)?.githubMessage)
  }
}
