/**
 * What became of one fan-out run, in the words the log, the summary and the outputs use. Pure: it
 * only reads what the run returned or threw, and whether the fan-out had stopped by then.
 */
import { errorMessage } from '../errors.ts'
import { describeOutcome, judge, type JudgeOptions } from '../outcome.ts'
import { OperationInterruptedError, type OperationOutcome } from '../providers/types.ts'
import type { FanoutTask } from './plan.ts'

export type TaskState = 'succeeded' | 'failed' | 'cancelled' | 'not-started'

/** Why the fan-out stopped starting runs and aborted the running ones. */
export type StopReason = { kind: 'fail-fast'; failedLabel: string } | { kind: 'cancelled' }

export interface TaskResult<T extends FanoutTask = FanoutTask> {
  task: T
  state: TaskState
  /** A failed run fails the step, unless fail-on-exit-code: false tolerates its non-zero exit. */
  failsStep: boolean
  /** What the run returned; null when it threw or never started. */
  outcome: OperationOutcome | null
  /** The result in a few plain words: "exit code 0", "failed with exit code 3", "cancelled (fail-fast …)". */
  words: string
  /** A sentence for an error annotation or the step's error; null unless the run failed. */
  message: string | null
  /** The sandbox or operation that ran it, when one was known. */
  operationId: string | null
  exitCode: number | null
  /** The service's duration when it reported one, else the time the run was in flight; null if never started. */
  durationMs: number | null
}

export interface FanoutCounts {
  total: number
  succeeded: number
  failed: number
  cancelled: number
  notStarted: number
}

export type Settled = { outcome: OperationOutcome } | { error: unknown }

export interface ClassifyContext {
  /** The fan-out's stop reason if it had stopped when the run settled: the run was then aborted by it. */
  stoppedBy: StopReason | undefined
  judging: JudgeOptions
  failOnExitCode: boolean
  /** Time the run was in flight, for runs without a service-reported duration. */
  elapsedMs: number
}

export function stopWords(reason: StopReason): string {
  return reason.kind === 'fail-fast' ? `fail-fast after ${reason.failedLabel} failed` : 'the job was cancelled'
}

export function classifyRun<T extends FanoutTask>(task: T, settled: Settled, context: ClassifyContext): TaskResult<T> {
  const { stoppedBy } = context
  if ('outcome' in settled) {
    const { outcome } = settled
    const verdict = judge(outcome, task.label, context.judging)
    const base = { task, outcome, operationId: outcome.operationId, exitCode: outcome.exitCode, durationMs: outcome.durationMs }
    if (verdict.ok) return { ...base, state: 'succeeded', failsStep: false, words: describeOutcome(outcome, context.judging), message: null }
    // A run the fan-out aborted reports CANCELLED; that is the stop's doing, not a failure of its own.
    if (outcome.status === 'CANCELLED' && stoppedBy !== undefined) {
      return { ...base, state: 'cancelled', failsStep: false, words: `cancelled (${stopWords(stoppedBy)})`, message: null }
    }
    const tolerated = verdict.kind === 'command' && outcome.exitCode !== null && !outcome.timedOut && !context.failOnExitCode
    return { ...base, state: 'failed', failsStep: !tolerated, words: describeOutcome(outcome, context.judging), message: verdict.message }
  }
  const operationId = settled.error instanceof OperationInterruptedError ? settled.error.operationId : null
  const base = { task, outcome: null, operationId, exitCode: null, durationMs: context.elapsedMs }
  if (stoppedBy !== undefined) {
    return { ...base, state: 'cancelled', failsStep: false, words: `cancelled (${stopWords(stoppedBy)})`, message: null }
  }
  // Providers name the run in their errors ("run 2 of 5: lost track of …"); the words are what follows.
  const reason = errorMessage(settled.error)
  const words = reason.startsWith(`${task.label}: `) ? reason.slice(task.label.length + 2) : reason
  return { ...base, state: 'failed', failsStep: true, words, message: `${task.label}: ${words}` }
}

export function notStarted<T extends FanoutTask>(task: T, stoppedBy: StopReason | undefined): TaskResult<T> {
  return {
    task,
    state: 'not-started',
    failsStep: false,
    outcome: null,
    words: stoppedBy ? `not started (${stopWords(stoppedBy)})` : 'not started',
    message: null,
    operationId: null,
    exitCode: null,
    durationMs: null,
  }
}

export function countResults(results: readonly TaskResult[]): FanoutCounts {
  const count = (state: TaskResult['state']): number => results.filter((result) => result.state === state).length
  return { total: results.length, succeeded: count('succeeded'), failed: count('failed'), cancelled: count('cancelled'), notStarted: count('not-started') }
}
