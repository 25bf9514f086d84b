/**
 * Figure: the chaos campaign (test/chaos/): hundreds of seeded runs of the bundled action with random
 * faults and signals, each checked exactly. Prints runs, failures (with their seeds and replay
 * command), how runs ended, and the median and p95 run time. CHAOS_RUNS (default 200),
 * CHAOS_PARALLEL (default 4) and CHAOS_BASE_SEED (default: a random base, printed) choose the campaign.
 */
import { campaignSeeds, runCampaign } from '../chaos/campaign.ts'
import { replayCommand } from '../chaos/failure-report.ts'
import { summarize } from '../chaos/summary.ts'
import { emit, emitError, progress } from './report.ts'

export async function chaosCampaign(defaultRuns = 200): Promise<void> {
  const figure = 'chaos.failures'
  const goal = '0 failing runs'
  try {
    const runs = Number(process.env.CHAOS_RUNS ?? defaultRuns)
    const parallel = Number(process.env.CHAOS_PARALLEL ?? 4)
    const setting = process.env.CHAOS_BASE_SEED
    const base = setting && setting !== 'random' ? Number(setting) >>> 0 : Math.floor(Math.random() * 2 ** 32)
    progress(`chaos: ${runs} runs from base seed ${base}, ${parallel} at once`)
    const started = Date.now()
    const outcomes = await runCampaign({
      seeds: campaignSeeds(base, runs),
      parallel,
      onRun: (outcome, done) => {
        const problems = outcome.verdict.problems
        progress(`chaos: run ${done}/${runs} seed ${outcome.seed}: ${problems.length === 0 ? 'ok' : 'FAILED'} in ${Math.round(outcome.durationMs)} ms`)
        if (outcome.report) process.stderr.write(`${outcome.report}\n\n`)
      },
    })
    const summary = summarize(outcomes)
    progress(summary.text)
    emit({
      figure,
      value: summary.failures,
      unit: 'runs',
      goal,
      runs: summary.runs,
      base_seed: base,
      failing_seeds: summary.failingSeeds,
      replay: summary.failingSeeds.map(replayCommand),
      succeeded: summary.success,
      failed_as_they_must: summary.expectedFailure,
      cancelled: summary.cancelled,
      filled_from_record: summary.filledFromRecord,
      faults_struck: summary.faultsStruck,
      median_run_ms: summary.medianMs,
      p95_run_ms: summary.p95Ms,
      wall_s: Math.round((Date.now() - started) / 1000),
    })
  } catch (error) {
    emitError(figure, 'runs', goal, error)
  }
}
