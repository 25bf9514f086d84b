/**
 * Small, pure formatting helpers shared by the live log, the status lines and the job summary.
 */

/**
 * Human duration for status lines and summaries: `850 ms`, `3.2 s`, `2 m 05 s`, `1 h 02 m`.
 * Rounding happens before the unit is chosen so that 59 960 ms reads `1 m 00 s`, never `60.0 s`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0
  if (ms < 1000) {
    const rounded = Math.round(ms)
    if (rounded < 1000) return `${rounded} ms`
  }
  const tenths = Math.round(ms / 100)
  if (tenths < 600) return `${(tenths / 10).toFixed(1)} s`
  const totalSeconds = Math.round(ms / 1000)
  const hours = Math.floor(totalSeconds / 3600)
  const minutes = Math.floor((totalSeconds % 3600) / 60)
  const seconds = totalSeconds % 60
  if (hours > 0) return `${hours} h ${pad2(minutes)} m`
  return `${minutes} m ${pad2(seconds)} s`
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n)
}

/**
 * One symbol per outcome, for both operation statuses (SUCCESS, FAILED, ...) and build-step outcomes
 * (built, cached, failed, skipped). Unknown values get a neutral dot rather than a guess.
 */
export function statusSymbol(outcome: string): string {
  switch (outcome.toLowerCase()) {
    case 'success':
    case 'built':
      return '✓'
    case 'cached':
      return '♻'
    case 'failed':
      return '✗'
    case 'cancelled':
      return '⊘'
    case 'skipped':
      return '–'
    case 'pending':
    case 'assigned':
    case 'executing':
      return '…'
    default:
      return '•'
  }
}

/**
 * Escapes the data part of a workflow command (`::cmd::<data>`), exactly as the runner unescapes it.
 * `%` goes first so the escapes we add are not escaped again.
 */
export function escapeCommandData(value: string): string {
  return value.replaceAll('%', '%25').replaceAll('\r', '%0D').replaceAll('\n', '%0A')
}

/** Escapes a workflow command property value (`::cmd key=<value>::`): data escapes plus `:` and `,`. */
export function escapeCommandProperty(value: string): string {
  return escapeCommandData(value).replaceAll(':', '%3A').replaceAll(',', '%2C')
}

/** A command's first line for a group title, cut at `maxChars` with a visible mark, `…` when more lines follow. */
export function firstLine(text: string, maxChars = 120): string {
  const line = text.split('\n', 1)[0] ?? ''
  const more = text.includes('\n') ? ' …' : ''
  return line.length > maxChars ? `${line.slice(0, maxChars - 1)}…` : `${line}${more}`
}
