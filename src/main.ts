/**
 * The main step: validate inputs, prepare the image (resolve, import or build — the provider's way),
 * run the command (or many, a fan-out) with its output streamed live, then report. After a failure,
 * what is known (outputs, the summary row) is written first, then remote work still running is
 * cancelled, and only then the step fails; the first error is the one the step reports. main never
 * names a vendor: the provider factory does.
 */
import * as core from '@actions/core'
import { installCancellation, RemoteWorkRegistry, type CancelLines } from './cancel.ts'
import { errorMessage, MissingTokenError } from './errors.ts'
import { exitAfterFlush } from './exit.ts'
import { fanoutOutputs } from './fanout/outputs.ts'
import type { FanoutTask } from './fanout/plan.ts'
import { runMany } from './fanout/run-many.ts'
import { renderFanoutSummary } from './fanout/summary.ts'
import { imageRequest } from './image-request.ts'
import { getInputs, type Inputs } from './inputs.ts'
import { handleMissingToken } from './modes/missing-token.ts'
import { eventContext } from './modes/preview-github.ts'
import { runPreview } from './modes/preview.ts'
import { runTeardown } from './modes/teardown.ts'
import { runRefresh } from './modes/refresh.ts'
import { judge } from './outcome.ts'
import { deferDebug, flushDebug } from './output/deferred-debug.ts'
import { RemoteLog, reportFailure } from './output/remote-log.ts'
import { say, warn } from './output/say.ts'
import { createProvider } from './providers/factory.ts'
import {
  isTerminal,
  OperationInterruptedError,
  type FilePlacement,
  type LogGroup,
  type LogGroups,
  type OperationOutcome,
  type OutputSink,
  type PreparedImage,
  type Provider,
  type ProviderContext,
  type RunOutcome,
  type RunRequest,
  type StepReport,
} from './providers/types.ts'
import { markMainStarted, saveLiveWork, type LiveWork } from './state.ts'
import { collectUploads } from './upload.ts'
import { tryWriteStepSummary } from './step-summary.ts'

/** DELETE budget per piece of work inside the runner's 7.5 s SIGINT grace. */
const CANCEL_TIMEOUT_MS = 3000
/**
 * Tuning knob (not an input): silence on an event stream before it counts as dead and is resumed.
 * The service sends keepalives, so the default is generous; tests and odd proxies may lower it.
 */
const EVENTS_IDLE_TIMEOUT_ENV = 'SANDBOX_ACTION_EVENTS_IDLE_TIMEOUT_MS'

export interface MainDeps {
  exit: (code: number) => void
}

/** What the summary reports: the provider's operations and sections, the run, a fan-out table. */
interface RunReport extends StepReport {
  fanout?: string
}

export async function run(deps: MainDeps = { exit: (code) => void exitAfterFlush(code) }): Promise<void> {
  markMainStarted()
  let inputs: Inputs
  try {
    inputs = getInputs()
  } catch (error) {
    if (error instanceof MissingTokenError) handleMissingToken(error, eventContext())
    else core.setFailed(errorMessage(error))
    return
  }
  switch (inputs.mode) {
    case 'run':
    case 'refresh':
      return runSteps(inputs, deps)
    case 'preview':
      return runPreview(inputs, deps)
    case 'teardown':
      return runTeardown(inputs, deps)
  }
}

/** mode run (prepare the image, then run the command or a fan-out) and mode refresh (follow an upstream under a name). */
async function runSteps(inputs: Inputs, deps: MainDeps): Promise<void> {
  const controller = new AbortController()
  const log = new RemoteLog()
  // A signal or a cancel's answer may come while the run's window is open: their lines wait for it
  // to close, where they cannot split a remote line and a warning is not swallowed.
  const cancelLines: CancelLines = {
    info: (text) => log.afterWindow(() => say(text)),
    warning: (text) => log.afterWindow(() => warn(text)),
  }
  const registry = new RemoteWorkRegistry(saveLiveWork, cancelLines)
  const idleTimeout = Number(process.env[EVENTS_IDLE_TIMEOUT_ENV])
  const provider = createProvider(inputs, {
    registry,
    // The followers talk while a stop-commands window is open; their lines are printed once it closes.
    debug: deferDebug,
    ...(Number.isFinite(idleTimeout) && idleTimeout > 0 ? { eventsIdleTimeoutMs: idleTimeout } : {}),
  })
  const cancelRemote = (work: LiveWork): Promise<string> => provider.cancel(work, CANCEL_TIMEOUT_MS)
  const cancellation = installCancellation({ registry, cancelRemote, controller, exit: deps.exit, lines: cancelLines })
  const report: RunReport = { operations: [], sections: [] }
  const ctx: ProviderContext = { log, signal: controller.signal, registry, report, debug: deferDebug }

  let failure: { error: unknown } | undefined
  try {
    if (inputs.mode === 'refresh') {
      await runRefresh(inputs, provider, ctx)
    } else {
      const image = await provider.prepareImage(imageRequest(inputs), ctx)
      setImageOutputs(image)
      if (inputs.fanout) await runFanout(inputs, provider, image, ctx, registry, cancelRemote)
      else if (inputs.run) await runCommand(inputs, provider, image, ctx)
    }
  } catch (error) {
    failure = { error }
  }
  flushDebug()
  // A signal that arrived after the work finished still means the job was cancelled: never report success.
  const signalledBeforeReport = cancellation.signal !== undefined
  if (signalledBeforeReport) {
    await cancellation.settled()
    recordCancelled(registry.all(), report)
    core.setFailed(`The job was cancelled (${cancellation.signal}); remote work still running was cancelled.`)
    if (inputs.summary) await tryWriteSummary(provider, inputs, report)
  } else if (failure) {
    // Failure persistence: what is known is written before any cleanup can go wrong or hang.
    recordInterrupted(failure.error, report)
    if (inputs.summary) await tryWriteSummary(provider, inputs, report)
    if (registry.live().length > 0) {
      say(`Cancelling ${registry.live().length} piece(s) of remote work the failed step left running.`)
      await registry.cancelAll(cancelRemote)
    }
    core.setFailed(errorMessage(failure.error))
  } else if (inputs.summary) {
    await tryWriteSummary(provider, inputs, report)
  }
  cancellation.dispose()
  // The summary write above awaits, and a signal may land there; after dispose() the default
  // handler ends the process with the signal itself, so this is the last gap to close.
  if (!signalledBeforeReport && !failure && cancellation.signal) {
    await cancellation.settled()
    core.setFailed(`The job was cancelled (${cancellation.signal}) as the step was finishing.`)
  }
}

/** Outputs and summary rows for work a signal cut short, so later steps see what happened. */
function recordCancelled(work: readonly LiveWork[], report: RunReport): void {
  core.setOutput('status', 'CANCELLED')
  const run = work.find((item) => item.label === 'run')
  if (run) core.setOutput(run.provider === 'contree' ? 'operation-uuid' : `${run.kind}-id`, run.id)
  for (const item of work) {
    if (report.operations.some(({ outcome }) => outcome.operationId === item.id)) continue
    report.operations.push({ label: item.label, outcome: unfinished(item.id, 'CANCELLED', 'the job was cancelled'), expectsExitCode: false })
  }
}

/**
 * Outputs and the summary row of an operation the action lost track of (a stream it could not read,
 * its deadline, a bug): it is about to be cancelled unless it already ended.
 */
function recordInterrupted(error: unknown, report: RunReport): void {
  if (!(error instanceof OperationInterruptedError)) return
  const status = error.lastStatus !== null && isTerminal(error.lastStatus) ? error.lastStatus : 'CANCELLED'
  core.setOutput('operation-uuid', error.operationId)
  core.setOutput('status', status)
  const reason = error.message.startsWith(`${error.label}: `) ? error.message.slice(error.label.length + 2) : error.message
  report.operations.push({ label: error.label, outcome: unfinished(error.operationId, status, reason), expectsExitCode: false })
}

function unfinished(operationId: string, status: OperationOutcome['status'], error: string): OperationOutcome {
  return { operationId, status, exitCode: null, timedOut: false, error, resultImage: null, durationMs: 0 }
}

function setImageOutputs(image: PreparedImage): void {
  core.setOutput('image-id', image.id)
  core.setOutput('digest', image.digest ?? '')
  core.setOutput('cache-hit', String(image.cacheHit))
  core.setOutput('tag', image.tag ?? '')
  for (const [name, value] of Object.entries(image.outputs)) core.setOutput(name, value)
}

function setRunOutputs(outcome: RunOutcome): void {
  core.setOutput('status', outcome.status)
  core.setOutput('exit-code', outcome.exitCode === null ? '' : String(outcome.exitCode))
  core.setOutput('duration', (outcome.durationMs / 1000).toFixed(3))
  core.setOutput('timed-out', String(outcome.timedOut))
  for (const [name, value] of Object.entries(outcome.outputs)) core.setOutput(name, value)
}

/** The run request the inputs describe (without the command, which a fan-out sets per run). */
function baseRunRequest(inputs: Inputs, uploads: FilePlacement | undefined): Omit<RunRequest, 'command' | 'shell'> {
  const run = inputs.run
  if (!run) throw new Error('internal: no run inputs')
  return {
    env: run.env,
    ...(run.cwd ? { cwd: run.cwd } : {}),
    timeoutSeconds: run.timeoutSeconds,
    ...(uploads ? { uploads } : {}),
    keepAlive: inputs.together?.keepAlive ?? false,
    deadlineMs: inputs.deadlineSeconds * 1000,
    disposable: run.disposable,
    outputLimitBytes: inputs.outputLimitBytes,
  }
}

/** One outcome in the action's report shape. */
function asOperation(outcome: RunOutcome): OperationOutcome {
  return {
    operationId: outcome.id,
    status: outcome.status,
    exitCode: outcome.exitCode,
    timedOut: outcome.timedOut,
    error: outcome.error,
    resultImage: outcome.resultImage ?? null,
    durationMs: outcome.durationMs,
    ...(outcome.notices ? { notices: outcome.notices } : {}),
  }
}

async function runCommand(inputs: Inputs, provider: Provider, image: PreparedImage, ctx: ProviderContext): Promise<void> {
  const run = inputs.run
  if (!run) return
  const uploads = inputs.upload ? await collectUploads(inputs.upload) : undefined
  const outcome = await provider.run(
    image,
    { ...baseRunRequest(inputs, uploads), command: run.command, shell: run.shell, ...(run.args ? { args: run.args } : {}) },
    ctx,
  )
  ctx.report.operations.push({ label: 'run', outcome: asOperation(outcome), expectsExitCode: true })
  // Failure persistence: outputs first, so a later step sees them whatever happens next.
  setRunOutputs(outcome)

  const judging = { timeoutSeconds: run.timeoutSeconds, expectsExitCode: true }
  const verdict = judge(asOperation(outcome), 'The command', judging)
  if (verdict.ok) return
  if (verdict.kind === 'command' && outcome.exitCode !== null && !outcome.timedOut && !inputs.failOnExitCode) {
    core.info(`${verdict.message}. fail-on-exit-code is false, so the step continues.`)
    return
  }
  reportFailure(outcome.tail, verdict.message)
  throw new Error(verdict.message)
}

/**
 * A log for one fan-out run: the provider opens "its group" on it, and the bytes go to the run's
 * buffer, which the fan-out writes as one real group when the run has ended (with its own status line).
 */
function bufferedLog(sink: OutputSink): LogGroups {
  return {
    open: (): LogGroup => ({
      write: (stream, chunk) => sink.write(stream, chunk),
      ready: () => sink.ready?.(),
      note: (text) => sink.note?.(text),
      end: () => undefined,
      tail: () => [],
    }),
    reportFailure: (_lines, message) => message,
  }
}

async function runFanout(
  inputs: Inputs,
  provider: Provider,
  image: PreparedImage,
  ctx: ProviderContext,
  registry: RemoteWorkRegistry,
  cancelRemote: (work: LiveWork) => Promise<string>,
): Promise<void> {
  const plan = inputs.fanout
  const run = inputs.run
  if (!plan || !run) return
  const uploads = inputs.upload ? await collectUploads(inputs.upload) : undefined
  const base = baseRunRequest(inputs, uploads)
  const runOne = async (task: FanoutTask, sink: OutputSink, signal: AbortSignal): Promise<OperationOutcome> => {
    const request: RunRequest = { ...base, command: task.command, shell: task.shell, ...(task.args ? { args: task.args } : {}), env: task.env, label: task.label }
    try {
      return asOperation(await provider.run(image, request, { ...ctx, log: bufferedLog(sink), signal }))
    } catch (error) {
      // Stopped by fail-fast (not by the job's signal, whose handler cancels everything): its remote
      // work is still running and must be cancelled here.
      if (signal.aborted && !ctx.signal.aborted) await registry.cancelWhere((work) => work.label === task.label || work.label.startsWith(`${task.label} (`), cancelRemote)
      throw error
    }
  }
  const result = await runMany({
    tasks: plan.tasks,
    maxParallel: plan.maxParallel,
    failFast: plan.failFast,
    runOne,
    log: ctx.log as RemoteLog,
    signal: ctx.signal,
    judging: { timeoutSeconds: run.timeoutSeconds, expectsExitCode: true },
    failOnExitCode: inputs.failOnExitCode,
  })
  const outputs = fanoutOutputs(result.results, result.stoppedBy)
  core.setOutput('status', outputs.status)
  core.setOutput('results', outputs.results)
  ;(ctx.report as RunReport).fanout = renderFanoutSummary({
    provider: inputs.provider,
    endpoint: provider.endpoint,
    results: result.results,
    counts: result.counts,
    stoppedBy: result.stoppedBy,
  })
  if (result.failure !== null) throw new Error(result.failure)
}

async function tryWriteSummary(provider: Provider, inputs: Inputs, report: RunReport): Promise<void> {
  await tryWriteStepSummary(provider, report, report.fanout ? [report.fanout] : [], inputs.timeoutSeconds)
}
