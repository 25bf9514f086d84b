/**
 * Recognises GitHub's rate-limit answers and how long GitHub asks to wait (REST docs, "Exceeding
 * the rate limit"): a 403 or 429 with `retry-after` (wait that many seconds), or with
 * `x-ratelimit-remaining: 0` (wait until `x-ratelimit-reset`, UTC epoch seconds), or a secondary
 * limit named only in the message (wait at least a minute). Any other 403 is a permission problem.
 *
 * The shared src/http/retry-after.ts caps what it parses at 60 s so a job cannot stall on one header;
 * here the exact value matters, because a wait longer than the budget must give up rather than retry
 * early (GitHub may ban integrations that keep calling while limited).
 */

/** GitHub's advice when a secondary limit names no time: wait at least one minute. */
export const SECONDARY_DEFAULT_WAIT_MS = 60_000

export interface RateLimitWait {
  /** `primary`: the hourly budget is spent; `secondary`: too many requests too fast. */
  kind: 'primary' | 'secondary'
  /** How long GitHub asks the client to wait, in milliseconds, never negative. */
  waitMs: number
  /** Where the wait came from, for the message when the client gives up. */
  source: 'retry-after' | 'x-ratelimit-reset' | 'default'
}

export type ResponseHeaders = Readonly<Record<string, string | number | undefined>>

function header(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name]
  return value === undefined ? undefined : String(value).trim()
}

/** `retry-after` as delta-seconds or an HTTP-date, unclamped; undefined when unusable. */
export function parseRetryAfterExact(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined || value === '') return undefined
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000)
  // An HTTP-date has a weekday or month name; Date.parse alone accepts odd strings like "1".
  if (!/[a-z]{3}/i.test(value)) return undefined
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs)
}

/** The wait GitHub asks for, or undefined when the answer is not a rate limit. */
export function rateLimitWait(status: number, headers: ResponseHeaders, message: string, nowMs: number): RateLimitWait | undefined {
  if (status !== 403 && status !== 429) return undefined
  const exhausted = header(headers, 'x-ratelimit-remaining') === '0'
  const kind = exhausted || /API rate limit exceeded/i.test(message) ? 'primary' : 'secondary'
  const retryAfter = parseRetryAfterExact(header(headers, 'retry-after'), nowMs)
  if (retryAfter !== undefined) return { kind, waitMs: retryAfter, source: 'retry-after' }
  const reset = header(headers, 'x-ratelimit-reset')
  if (exhausted && reset !== undefined && /^\d+$/.test(reset)) {
    return { kind, waitMs: Math.max(0, Number(reset) * 1000 - nowMs), source: 'x-ratelimit-reset' }
  }
  if (exhausted || status === 429 || /rate limit|abuse/i.test(message)) {
    return { kind, waitMs: SECONDARY_DEFAULT_WAIT_MS, source: 'default' }
  }
  return undefined
}
