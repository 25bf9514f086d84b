/**
 * The action's benchmarks: `node test/bench/run.ts [figure group …]` (all groups when none given).
 * Prints one JSON line per figure on stdout, progress on stderr; never asserts. Runs the bundled
 * dist/index.js (build it first with `npm run bundle`) against the in-process emulators.
 *
 * Groups: startup (process start → first request, bundle size), sigint (SIGINT → DELETE),
 * stream (throughput vs a raw read, per payload and event size), rss (peak memory at 50/100/200 MB),
 * build (cold/warm/one-file rebuild), hash (context hashing vs sha256sum), chaos (200 seeded runs with
 * random faults and signals, checked exactly; see test/bench/chaos.ts for its settings), fanout (50 runs at max-parallel 10: wall
 * time against one run's, peak RSS), together (the Together provider's context upload, exec stream and
 * warm rebuild). fanout and together drive their modules from the sources and need no bundle.
 *
 * BENCH_PAYLOADS (e.g. `binary,utf8`), BENCH_EVENT_SIZES (e.g. `64KiB`) and BENCH_STREAM_MB narrow
 * the stream group while working on one case; a full run measures them all at 100 MB. BENCH_BUNDLE
 * runs the stream and rss groups on another build of the action (e.g. the commit before a change).
 */
import { existsSync } from 'node:fs'
import { BUNDLE } from '../helpers/run-action.ts'
import { buildFigures } from './build.ts'
import { chaosCampaign } from './chaos.ts'
import { fanoutFigures } from './fanout.ts'
import { contextHashing } from './hashing.ts'
import { emitError, progress } from './report.ts'
import { sigintLatency } from './sigint.ts'
import { bundleSize, startupLatency } from './startup.ts'
import { streamMemory, streamThroughput } from './stream.ts'
import { togetherFigures } from './together.ts'

const GROUPS = ['startup', 'sigint', 'stream', 'rss', 'build', 'hash', 'chaos', 'fanout', 'together'] as const
type Group = (typeof GROUPS)[number]

function selectedGroups(args: readonly string[]): Set<Group> {
  if (args.length === 0) return new Set(GROUPS)
  const unknown = args.filter((arg) => !(GROUPS as readonly string[]).includes(arg))
  if (unknown.length > 0) {
    process.stderr.write(`unknown figure group(s): ${unknown.join(', ')}; choose from ${GROUPS.join(', ')}\n`)
    process.exit(2)
  }
  return new Set(args as Group[])
}

function listFromEnv(name: string): string[] | undefined {
  const value = process.env[name]?.trim()
  return value ? value.split(',').map((item) => item.trim()) : undefined
}

const groups = selectedGroups(process.argv.slice(2))
const started = Date.now()

// fanout and together run their modules from the sources; hashing needs no bundle either.
const needsBundle = [...groups].some((group) => group !== 'hash' && group !== 'together' && group !== 'fanout')
if (!existsSync(BUNDLE)) {
  if (needsBundle) emitError('bundle', '-', 'dist/index.js exists', new Error(`${BUNDLE} is missing; run npm run bundle first`))
  if (groups.has('hash')) await contextHashing()
} else {
  if (groups.has('startup')) {
    bundleSize()
    await startupLatency(10)
  }
  if (groups.has('sigint')) await sigintLatency(20)
  if (groups.has('stream'))
    await streamThroughput({
      payloads: listFromEnv('BENCH_PAYLOADS'),
      eventSizes: listFromEnv('BENCH_EVENT_SIZES'),
      ...(process.env.BENCH_STREAM_MB ? { bytes: Number(process.env.BENCH_STREAM_MB) * 1_000_000 } : {}),
    })
  if (groups.has('rss')) await streamMemory()
  if (groups.has('build')) await buildFigures({ hashing: groups.has('hash') })
  else if (groups.has('hash')) await contextHashing()
  if (groups.has('chaos')) await chaosCampaign(200)
}
if (groups.has('fanout')) await fanoutFigures()

if (groups.has('together')) await togetherFigures()

progress(`done in ${Math.round((Date.now() - started) / 1000)} s`)
