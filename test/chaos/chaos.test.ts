/**
 * The seeded chaos test: the bundled action run many times through a proxy that injects random
 * faults (cuts at any byte, 5xx/425/429 with and without Retry-After, sse_error, stalls past the idle
 * limit, truncated and corrupt gzip, a SIGINT at a random moment), each run checked exactly: the
 * printed text, the POST and DELETE counts, nothing left running, no stray workflow command, no token.
 *
 *   CHAOS_RUNS=200 CHAOS_PARALLEL=4   more runs (default 32, 4 at once)
 *   CHAOS_BASE_SEED=<n> | random      another campaign (default: a fixed base, so CI is reproducible)
 *   CHAOS_SEED=<n>[,<n>…]             replay runs, as printed by a failure
 *   CHAOS_VERBOSE=1                   print the story of passing runs too
 */
import { expect, it } from 'vitest'
import { campaignSeeds, runCampaign } from './campaign.ts'
import { summarize } from './summary.ts'

const DEFAULT_RUNS = 32
const DEFAULT_PARALLEL = 4
const DEFAULT_BASE_SEED = 20_261_202

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`)
  return value
}

function settings(): { seeds: number[]; parallel: number; what: string } {
  const parallel = positive('CHAOS_PARALLEL', DEFAULT_PARALLEL)
  const chosen = process.env.CHAOS_SEED
  if (chosen !== undefined && chosen !== '') {
    const seeds = chosen.split(',').map((seed) => Number(seed) >>> 0)
    return { seeds, parallel, what: `seed${seeds.length > 1 ? 's' : ''} ${seeds.join(', ')}` }
  }
  const runs = positive('CHAOS_RUNS', DEFAULT_RUNS)
  const baseSetting = process.env.CHAOS_BASE_SEED
  const base = baseSetting === 'random' ? Math.floor(Math.random() * 2 ** 32) : baseSetting ? Number(baseSetting) >>> 0 : DEFAULT_BASE_SEED
  return { seeds: campaignSeeds(base, runs), parallel, what: `${runs} runs from base seed ${base}` }
}

const { seeds, parallel, what } = settings()

it(`survives random faults and signals exactly: ${what}`, async () => {
  const outcomes = await runCampaign({
    seeds,
    parallel,
    reportEveryRun: process.env.CHAOS_VERBOSE === '1',
    onRun: (outcome) => {
      if (outcome.report) console.error(`${outcome.report}\n`)
    },
  })
  const summary = summarize(outcomes)
  console.log(summary.text)
  const failing = outcomes.filter((outcome) => outcome.verdict.problems.length > 0)
  expect(
    failing.map((outcome) => outcome.seed),
    `failing seeds (their reports are above):\n${failing.map((outcome) => outcome.report?.split('\n').slice(0, 6).join('\n')).join('\n\n')}`,
  ).toEqual([])
}, 120_000 + Math.ceil(seeds.length / parallel) * 60_000)
