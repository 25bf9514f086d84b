/**
 * Output conventions of the benchmarks: one JSON line per figure on stdout (so the output can be
 * piped into a file or jq), progress and diagnostics on stderr. Benchmarks print; they never assert.
 */

export interface Figure {
  figure: string
  value: number | null
  unit: string
  goal: string
  [extra: string]: unknown
}

export function emit(figure: Figure): void {
  process.stdout.write(`${JSON.stringify(figure)}\n`)
}

/** A figure that could not be measured: printed in the same shape, so a reader sees which and why. */
export function emitError(figure: string, unit: string, goal: string, error: unknown, extra: Record<string, unknown> = {}): void {
  emit({ figure, value: null, unit, goal, error: describeError(error), ...extra })
}

export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${message}\n`)
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message.split('\n').slice(0, 6).join(' | ')
  return String(error)
}

export function median(values: readonly number[]): number {
  return percentile(values, 50)
}

/** Nearest-rank percentile: always one of the measured values, never an interpolation. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number
}

export function round(value: number, digits = 3): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

export const MB = 1_000_000
