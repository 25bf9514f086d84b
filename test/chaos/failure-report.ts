/**
 * What a failing chaos run prints: the seed and the one line that replays it, the problems, the
 * plan, what the proxy saw and did, and enough of the action's output to start reading.
 */
import { describeExchange } from './chaos-proxy.ts'
import { describePlan } from './plan.ts'
import type { RunRecord } from './run-once.ts'
import type { Verdict } from './verdict.ts'

export const TEST_FILE = 'test/chaos/chaos.test.ts'
const MAX_EXCHANGES = 80

export function replayCommand(seed: number): string {
  return `CHAOS_SEED=${seed} bash scripts/node24.sh vitest run ${TEST_FILE}`
}

/** The whole story of a run; printed for every failing run (and every run with CHAOS_VERBOSE=1). */
export function runReport(record: RunRecord, verdict: Verdict): string {
  const { result, signal } = record
  const exchanges = record.exchanges.map((exchange) => describeExchange(exchange, record.startedAt))
  const shown = exchanges.length > MAX_EXCHANGES ? [...exchanges.slice(0, MAX_EXCHANGES / 2), `… ${exchanges.length - MAX_EXCHANGES} more …`, ...exchanges.slice(-MAX_EXCHANGES / 2)] : exchanges
  const signalLine = signal
    ? `SIGINT sent at +${Math.round(signal.sentAt - record.startedAt)} ms, after ${signal.printedAtSignal} printed characters; ${signal.acknowledgedAt === undefined ? 'never acknowledged' : `acknowledged ${Math.round(signal.acknowledgedAt - signal.sentAt)} ms later`}`
    : 'no signal sent'
  const lines = [
    `chaos run ${verdict.problems.length > 0 ? 'failed' : 'passed'}: seed ${record.seed}`,
    `replay: ${replayCommand(record.seed)}`,
    ...(verdict.problems.length > 0 ? ['problems:', ...verdict.problems.map((problem) => `  - ${problem}`)] : []),
    ...(verdict.difference ? [`first difference of the printed text: ${verdict.difference}`] : []),
    describePlan(record.plan),
    `exit: ${result.exitCode ?? `signal ${result.signal}`} after ${Math.round(record.durationMs)} ms; ${signalLine}`,
    `operations: ${[...record.operations].map(([id, status]) => `${id} ${status ?? 'unknown'}`).join(', ') || 'none'}; saved state: ${result.state.remoteWork ?? 'none'}`,
    'requests (proxy log):',
    ...shown.map((line) => `  ${line}`),
    'action stdout (last 1500 characters):',
    result.stdout.slice(-1500),
    ...(result.stderr.trim() !== '' ? ['action stderr:', result.stderr.slice(-1500)] : []),
  ]
  return lines.join('\n')
}
