/** The figures of a campaign: runs, failures, how runs ended, run time. */
import type { RunOutcome } from './campaign.ts'

export interface CampaignSummary {
  runs: number
  failures: number
  failingSeeds: number[]
  success: number
  expectedFailure: number
  cancelled: number
  filledFromRecord: number
  faultsStruck: number
  /** Per target and kind: how often a fault struck and how often it really broke the exchange. */
  faultKinds: Record<string, { struck: number; happened: number }>
  medianMs: number
  p95Ms: number
  text: string
}

/** Nearest-rank percentile: always one of the measured values. */
function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number
}

export function summarize(outcomes: readonly RunOutcome[]): CampaignSummary {
  const failing = outcomes.filter((outcome) => outcome.verdict.problems.length > 0)
  const durations = outcomes.map((outcome) => outcome.durationMs)
  const count = (kind: string) => outcomes.filter((outcome) => outcome.verdict.kind === kind).length
  const faultKinds: Record<string, { struck: number; happened: number }> = {}
  for (const exchange of outcomes.flatMap((outcome) => outcome.record?.exchanges ?? [])) {
    if (exchange.fault === undefined) continue
    const name = `${exchange.target} ${exchange.fault.action.kind}`
    const tally = (faultKinds[name] ??= { struck: 0, happened: 0 })
    tally.struck++
    if (exchange.faultHappened) tally.happened++
  }
  const faultsStruck = outcomes.reduce((sum, outcome) => sum + (outcome.record?.exchanges.filter((exchange) => exchange.fault !== undefined).length ?? 0), 0)
  const summary = {
    runs: outcomes.length,
    failures: failing.length,
    failingSeeds: failing.map((outcome) => outcome.seed),
    success: count('success'),
    expectedFailure: count('expected-failure'),
    cancelled: count('cancelled'),
    filledFromRecord: outcomes.filter((outcome) => outcome.verdict.filledFromRecord).length,
    faultsStruck,
    faultKinds,
    medianMs: Math.round(percentile(durations, 50)),
    p95Ms: Math.round(percentile(durations, 95)),
  }
  const text =
    `chaos: ${summary.runs} runs, ${summary.failures} failed${summary.failures > 0 ? ` (seeds ${summary.failingSeeds.join(', ')})` : ''}; ` +
    `${summary.success} succeeded, ${summary.expectedFailure} failed as they must, ${summary.cancelled} cancelled; ` +
    `${summary.faultsStruck} faults struck; ${summary.filledFromRecord} filled from the operation record; ` +
    `run time median ${summary.medianMs} ms, p95 ${summary.p95Ms} ms\n` +
    `faults (happened/struck): ${Object.entries(faultKinds)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, tally]) => `${name} ${tally.happened}/${tally.struck}`)
      .join(', ')}`
  return { ...summary, text }
}
