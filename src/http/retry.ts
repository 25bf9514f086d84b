/**
 * The one retry policy of the action (design.md "Retries"). It only decides; the HTTP client does
 * the single sleep per retry, so there is never a second sleep hidden elsewhere.
 */
import { RequestTimeoutError, TransportError } from './errors.ts'
import { realSleep, type Sleep } from './sleep.ts'

export const DEFAULT_DELAYS_MS: readonly number[] = [100, 200, 500, 1000, 2000, 5000]
export const DEFAULT_MAX_ATTEMPTS = 10

/** What happened on one attempt. */
export interface AttemptOutcome {
  status?: number
  error?: TransportError | RequestTimeoutError
  retryAfterMs?: number
}

export type RetryDecision = { retry: false } | { retry: true; delayMs: number }

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])
/** Statuses that promise the request was rejected before any processing: safe to replay even a POST. */
const NOT_PROCESSED_STATUSES = new Set([425, 429])
const TRANSIENT_STATUSES = new Set([408, 410, 425, 429])

export function isTransientStatus(status: number): boolean {
  return TRANSIENT_STATUSES.has(status) || (status >= 500 && status <= 599)
}

/** The ladder delay before retry number `retryIndex` (0-based); the tail repeats. */
export function ladderDelay(delaysMs: readonly number[], retryIndex: number): number {
  if (delaysMs.length === 0) return 0
  return delaysMs[Math.min(Math.max(0, retryIndex), delaysMs.length - 1)] ?? 0
}

export class RetryPolicy {
  readonly delaysMs: readonly number[]
  readonly maxAttempts: number
  readonly sleep: Sleep

  constructor(opts: { delaysMs?: readonly number[]; maxAttempts?: number; sleep?: Sleep } = {}) {
    this.delaysMs = opts.delaysMs ?? DEFAULT_DELAYS_MS
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS)
    this.sleep = opts.sleep ?? realSleep
  }

  /**
   * `attempt` is the 1-based number of the attempt that just produced `outcome`. A retry is
   * allowed only while attempts remain, and the delay is `Retry-After` when the server sent one,
   * else the ladder.
   */
  decide(method: string, outcome: AttemptOutcome, attempt: number): RetryDecision {
    if (attempt >= this.maxAttempts) return { retry: false }
    if (!this.isRetryable(method.toUpperCase(), outcome)) return { retry: false }
    const delayMs = outcome.status !== undefined && outcome.retryAfterMs !== undefined
      ? Math.max(0, outcome.retryAfterMs)
      : ladderDelay(this.delaysMs, attempt - 1)
    return { retry: true, delayMs }
  }

  private isRetryable(method: string, outcome: AttemptOutcome): boolean {
    const idempotent = IDEMPOTENT_METHODS.has(method)
    if (outcome.error !== undefined) {
      // A timeout may mean the server is still working on it; repeating would multiply a long wait.
      if (outcome.error instanceof RequestTimeoutError) return false
      return idempotent || !outcome.error.requestSent
    }
    const status = outcome.status
    if (status === undefined || status < 400) return false
    if (NOT_PROCESSED_STATUSES.has(status)) return true
    return idempotent && isTransientStatus(status)
  }
}
