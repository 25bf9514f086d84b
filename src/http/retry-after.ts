/** Parses a `Retry-After` header into milliseconds: delta-seconds or an HTTP-date. */

/** A server asking for more than this is treated as asking for this much; a job cannot stall on one header. */
export const MAX_RETRY_AFTER_MS = 60_000

/**
 * Returns undefined for a missing or unusable value (garbage, inf, nan) so the caller falls back to
 * its ladder. Negative values and dates in the past mean "now".
 */
export function parseRetryAfter(value: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === undefined) return undefined
  const text = value.trim()
  if (text === '') return undefined
  if (/^[+-]?\d+(\.\d+)?$/.test(text)) {
    const seconds = Number(text)
    if (!Number.isFinite(seconds)) return undefined
    return clamp(seconds * 1000)
  }
  // HTTP-date needs a weekday or month name; Date.parse alone would accept odd strings like "1".
  if (!/[a-z]{3}/i.test(text)) return undefined
  const at = Date.parse(text)
  if (Number.isNaN(at)) return undefined
  return clamp(at - nowMs)
}

function clamp(ms: number): number {
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.round(ms)))
}
