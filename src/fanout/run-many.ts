/**
 * The fan-out engine: many sandbox runs from one step.
 *
 * Runs start in plan order, at most `maxParallel` at a time. Each streams into its own BufferedSink;
 * when it ends, its output is written as one log group through the GroupQueue, so groups never
 * interleave and a run that ends while another's group is being written waits its turn. While runs are
 * in flight a progress line is printed every few seconds, always between groups.
 *
 * Stopping: with fail-fast, the first run that fails the step stops the fan-out; the job's signal
 * (SIGINT/SIGTERM) stops it too. Stopping means no new run starts and every running one is aborted
 * through the signal runOne was given, so the provider stops it remotely. Either way the engine
 * resolves only after every started run has ended and its group is written: the step's verdict never
 * comes while remote work of this step may still be running.
 *
 * Annotations: the runner shows at most 10 error annotations per step and drops the rest, so failed
 * runs raise at most {@link RUN_ERROR_ANNOTATIONS}, leaving the tenth for the step's own error (the
 * caller raises it from `failure`). Each annotated run's last lines are repeated outside its group.
 */
import * as core from '@actions/core'
import { forEachLimit } from '../concurrency.ts'
import { errorMessage } from '../errors.ts'
import { statusLine, type JudgeOptions } from '../outcome.ts'
import { flushDebug } from '../output/deferred-debug.ts'
import { firstLine, formatDuration } from '../output/format.ts'
import { annotationMessage, type RemoteLog } from '../output/remote-log.ts'
import { say, warn } from '../output/say.ts'
import type { OperationOutcome, OutputSink } from '../providers/types.ts'
import { BufferedSink, MemoryBudget } from './buffered-sink.ts'
import { GroupQueue } from './group-queue.ts'
import { displayCommand, type FanoutTask } from './plan.ts'
import { classifyRun, countResults, notStarted, stopWords, type FanoutCounts, type Settled, type StopReason, type TaskResult } from './task-result.ts'

/** The runner's limit of annotations of one type per step (ExecutionContext `_maxCountPerIssueType`). */
const RUNNER_ANNOTATIONS_PER_TYPE = 10
/** Error annotations for failed runs: one fewer than the runner shows, so the step's own error is never dropped. */
export const RUN_ERROR_ANNOTATIONS = RUNNER_ANNOTATIONS_PER_TYPE - 1
export const DEFAULT_PROGRESS_INTERVAL_MS = 5000
/** Memory for buffered output of all runs together; beyond it, output waits in files. */
export const DEFAULT_TOTAL_MEMORY_BYTES = 32 * 1024 * 1024

/**
 * Runs one task: starts the remote work, streams its output into `sink` (awaiting `sink.ready()`
 * after writes), and resolves with its outcome once it has ended. When `signal` aborts, it stops the
 * remote work and settles promptly (resolving with a CANCELLED outcome or rejecting alike).
 */
export type RunOne<T extends FanoutTask> = (task: T, sink: OutputSink, signal: AbortSignal) => Promise<OperationOutcome>

/** Time, injected so tests drive progress and durations without waiting. */
export interface FanoutClock {
  /** Monotonic milliseconds. */
  now(): number
  /** Calls `tick` every `ms` until the returned function is called. */
  every(ms: number, tick: () => void): () => void
}

export const systemClock: FanoutClock = {
  now: () => performance.now(),
  every: (ms, tick) => {
    const timer = setInterval(tick, ms)
    // Progress alone must never keep the process alive.
    timer.unref()
    return () => clearInterval(timer)
  },
}

/** Where the engine's own lines go; all three are called only while no group is open. */
export interface FanoutPrinter {
  info(line: string): void
  error(message: string): void
  warning(message: string): void
}

const corePrinter: FanoutPrinter = {
  info: say,
  error: (message) => core.error(annotationMessage(message)),
  warning: warn,
}

export interface RunManyOptions<T extends FanoutTask> {
  tasks: readonly T[]
  maxParallel: number
  failFast: boolean
  runOne: RunOne<T>
  /** The one log writer; every group is opened on it. */
  log: RemoteLog
  /** The job's signal: once aborted, nothing new starts and every running run is aborted. */
  signal?: AbortSignal
  /** How outcomes are judged (default: a command runs, so a missing exit code means it was killed). */
  judging?: JudgeOptions
  /** false: a run that exits non-zero is shown as failed but does not fail the step (default true). */
  failOnExitCode?: boolean
  output?: {
    /** Per run, before its output moves to a file (default: the BufferedSink default). */
    memoryLimitBytes?: number
    /** All runs together (default {@link DEFAULT_TOTAL_MEMORY_BYTES}). */
    totalMemoryBytes?: number
    /** Directory for spill files (default RUNNER_TEMP, else the OS temp dir). */
    directory?: string
  }
  progressIntervalMs?: number
  clock?: FanoutClock
  printer?: FanoutPrinter
}

export interface RunManyResult<T extends FanoutTask> {
  /** One per task, in plan order. */
  results: TaskResult<T>[]
  stoppedBy: StopReason | null
  counts: FanoutCounts
  /** The step's one error when the fan-out fails it (a run failed it, or the job was cancelled); else null. */
  failure: string | null
}

export async function runMany<T extends FanoutTask>(options: RunManyOptions<T>): Promise<RunManyResult<T>> {
  const { tasks, log, runOne } = options
  const clock = options.clock ?? systemClock
  const printer = options.printer ?? corePrinter
  const judging = options.judging ?? { expectsExitCode: true }
  const failOnExitCode = options.failOnExitCode ?? true
  const budget = new MemoryBudget(options.output?.totalMemoryBytes ?? DEFAULT_TOTAL_MEMORY_BYTES)
  const queue = new GroupQueue((line) => printer.info(line))
  const results: (TaskResult<T> | undefined)[] = new Array(tasks.length)
  const sinks = new Set<BufferedSink>()
  const stop = new AbortController()
  const started = clock.now()
  let stoppedBy: StopReason | undefined
  let running = 0
  let ended = 0
  let failed = 0
  let annotated = 0
  let warned = 0

  const waiting = (): number => tasks.length - ended - running
  const progressLine = (): string => {
    const notYet = waiting()
    const rest = notYet === 0 ? '' : stoppedBy === undefined ? `, ${notYet} waiting` : `, ${notYet} will not start`
    return `fan-out: ${ended}/${tasks.length} done (${failed} failed), ${running} running${rest}`
  }

  const stopAll = (reason: StopReason): void => {
    if (stoppedBy !== undefined) return
    stoppedBy = reason
    stop.abort(new Error(`fan-out stopped: ${stopWords(reason)}`))
    if (running + waiting() > 0) queue.say(`fan-out: stopping (${stopWords(reason)}): cancelling ${running} running run(s); ${waiting()} will not start.`)
  }
  const onJobAbort = (): void => stopAll({ kind: 'cancelled' })

  /** The run's group, then (outside it) what the step must hear about the run. Never throws. */
  const writeGroup = async (result: TaskResult<T>, sink: BufferedSink): Promise<void> => {
    let tail: string[] = []
    try {
      const group = log.open(`${result.task.label}: ${firstLine(displayCommand(result.task))}`)
      try {
        await sink.replayInto(group)
      } catch (error) {
        group.note(`[fan-out: the rest of this run's saved output could not be written: ${errorMessage(error)}]`)
      }
      group.end(runStatusLine(result, judging))
      tail = group.tail()
    } catch (error) {
      // The log of one run is lost, not its verdict: the step still hears how it ended.
      log.endOpenGroup('(output interrupted)')
      printer.warning(`fan-out: the log of ${result.task.label} could not be written: ${errorMessage(error)}`)
    } finally {
      await sink.dispose()
      sinks.delete(sink)
    }
    flushDebug()
    if (result.failsStep) {
      if (annotated < RUN_ERROR_ANNOTATIONS) printer.error(log.reportFailure(tail, result.message ?? `${result.task.label} failed`))
      else if (annotated === RUN_ERROR_ANNOTATIONS) printer.info('More runs failed than GitHub shows error annotations for one step; the others are in their groups and the job summary.')
      annotated++
    } else if (result.state === 'failed') {
      printer.info(`${result.message ?? result.words}. fail-on-exit-code is false, so the step continues.`)
    }
    for (const notice of result.outcome?.notices ?? []) {
      if (warned++ < RUNNER_ANNOTATIONS_PER_TYPE) printer.warning(`${result.task.label}: ${notice}`)
    }
  }

  const runTask = async (task: T, index: number): Promise<void> => {
    const sink = new BufferedSink({
      ...(options.output?.memoryLimitBytes !== undefined ? { memoryLimitBytes: options.output.memoryLimitBytes } : {}),
      ...(options.output?.directory !== undefined ? { directory: options.output.directory } : {}),
      budget,
    })
    sinks.add(sink)
    running++
    const taskStarted = clock.now()
    let settled: Settled
    try {
      settled = { outcome: await runOne(task, sink, stop.signal) }
    } catch (error) {
      settled = { error }
    }
    running--
    ended++
    sink.close()
    const result = classifyRun(task, settled, { stoppedBy, judging, failOnExitCode, elapsedMs: clock.now() - taskStarted })
    results[index] = result
    if (result.state === 'failed') failed++
    if (result.failsStep && options.failFast) stopAll({ kind: 'fail-fast', failedLabel: task.label })
    queue.enqueue(() => writeGroup(result, sink))
  }

  if (options.signal?.aborted) onJobAbort()
  else options.signal?.addEventListener('abort', onJobAbort, { once: true })
  const stopProgress = clock.every(options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS, () => {
    if (running > 0) queue.progress(progressLine)
  })
  try {
    try {
      await forEachLimit(tasks, options.maxParallel, runTask, { stopStarting: stop.signal })
    } finally {
      // Groups of runs that ended are written whatever happened to the others.
      await queue.idle()
    }
  } finally {
    stopProgress()
    options.signal?.removeEventListener('abort', onJobAbort)
    // Output of runs whose group was never written (the engine itself failed) must not leave files behind.
    await Promise.all([...sinks].map((sink) => sink.dispose()))
  }

  const all = tasks.map((task, index) => results[index] ?? notStarted(task, stoppedBy))
  const counts = countResults(all)
  printer.info(
    `fan-out: ${counts.total} run(s) in ${formatDuration(clock.now() - started)}: ${counts.succeeded} succeeded, ${counts.failed} failed, ` +
      `${counts.cancelled} cancelled, ${counts.notStarted} not started.`,
  )
  return { results: all, stoppedBy: stoppedBy ?? null, counts, failure: failureMessage(all, counts, stoppedBy) }
}

/** How many failed runs the step's error names before "and N more". */
const NAMED_FAILURES = 3

function failureMessage(results: readonly TaskResult[], counts: FanoutCounts, stoppedBy: StopReason | undefined): string | null {
  const failing = results.filter((result) => result.failsStep)
  const stopped = counts.cancelled + counts.notStarted > 0 ? `; ${counts.cancelled} cancelled and ${counts.notStarted} not started` : ''
  if (failing.length === 0) {
    return stoppedBy?.kind === 'cancelled' ? `The job was cancelled: ${counts.succeeded} of ${counts.total} runs had succeeded${stopped}.` : null
  }
  const named = failing.slice(0, NAMED_FAILURES).map((result) => `${result.task.label} (${result.words})`)
  const more = failing.length > NAMED_FAILURES ? ` and ${failing.length - NAMED_FAILURES} more` : ''
  const why = stoppedBy === undefined ? '' : ` (${stopWords(stoppedBy)})`
  return `${failing.length} of ${counts.total} runs failed: ${named.join(', ')}${more}${stopped}${why}.`
}

/** The one-line status after a run's group. */
function runStatusLine(result: TaskResult, judging: JudgeOptions): string {
  const duration = result.durationMs === null ? '' : ` in ${formatDuration(result.durationMs)}`
  const operation = result.operationId === null ? '' : ` (operation ${result.operationId})`
  if (result.state === 'cancelled') return `⊘ ${result.task.label}: ${result.words}${duration}${operation}`
  if (result.outcome !== null) return statusLine(result.outcome, result.task.label, formatDuration(result.outcome.durationMs), judging)
  return `✗ ${result.task.label}: ${result.words}${duration}${operation}`
}
