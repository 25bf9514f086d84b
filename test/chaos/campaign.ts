/**
 * A campaign: many seeded chaos runs against one ConTree emulator, a few at a time. Shared by the
 * test (a modest default) and the bench group (hundreds of runs).
 */
import { startContreeEmulator } from '../emulator/contree/index.ts'
import { replayCommand, runReport } from './failure-report.ts'
import { describePlan, makePlan } from './plan.ts'
import { runOnce, type RunRecord } from './run-once.ts'
import { judge, type Verdict } from './verdict.ts'

const TOKEN = 'tok-chaos-Vx3q9Lw2'

export interface CampaignOptions {
  seeds: readonly number[]
  /** Runs at once. */
  parallel: number
  /** Called after each run (progress, failure reports as they happen). */
  onRun?: (outcome: RunOutcome, done: number) => void
  /** Report passing runs too (CHAOS_VERBOSE=1). */
  reportEveryRun?: boolean
}

export interface RunOutcome {
  seed: number
  record?: RunRecord
  verdict: Verdict
  /** Printed when the run failed (or always, with `reportEveryRun`). */
  report?: string
  durationMs: number
}

/** Seeds of a campaign: consecutive from the base, each spread by the PRNG's seed mixing. */
export function campaignSeeds(base: number, runs: number): number[] {
  return Array.from({ length: runs }, (_, i) => (base + i) >>> 0)
}

export async function runCampaign(options: CampaignOptions): Promise<RunOutcome[]> {
  const emulator = await startContreeEmulator({ token: TOKEN, keepaliveMs: 200, log: () => undefined })
  const outcomes: RunOutcome[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < options.seeds.length) {
      const seed = options.seeds[next++] as number
      const outcome = await runSeed(seed, emulator, options)
      outcomes.push(outcome)
      options.onRun?.(outcome, outcomes.length)
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.parallel) }, worker))
  } finally {
    await emulator.close()
  }
  return outcomes.sort((a, b) => options.seeds.indexOf(a.seed) - options.seeds.indexOf(b.seed))
}

async function runSeed(seed: number, emulator: Awaited<ReturnType<typeof startContreeEmulator>>, options: CampaignOptions): Promise<RunOutcome> {
  const started = performance.now()
  try {
    const record = await runOnce(seed, { emulator, token: TOKEN })
    const verdict = judge(record)
    const failed = verdict.problems.length > 0
    return { seed, record, verdict, durationMs: record.durationMs, ...(failed || options.reportEveryRun ? { report: runReport(record, verdict) } : {}) }
  } catch (error) {
    // The harness itself failed: still a failing seed, reported with its plan.
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
    const verdict: Verdict = { problems: [`the chaos harness failed: ${message}`], kind: 'success', filledFromRecord: false }
    const report = [`chaos run failed: seed ${seed}`, `replay: ${replayCommand(seed)}`, verdict.problems[0], describePlan(makePlan(seed))].join('\n')
    return { seed, verdict, durationMs: performance.now() - started, report }
  }
}
