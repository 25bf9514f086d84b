/**
 * The main step: validate inputs, prepare the image (resolve, import or build), place the uploaded
 * files, run the command with its output streamed live, then report. After a failure, what is known
 * (outputs, the summary row) is written first, then remote work still running is cancelled, and only
 * then the step fails; the first error is the one the step reports.
 */
import * as core from '@actions/core'
import { installCancellation, RemoteWorkRegistry } from './cancel.ts'
import { errorMessage } from './errors.ts'
import { exitAfterFlush } from './exit.ts'
import { ImageCache, prepareImage, type PreparedImage, type ReportedOperation } from './image.ts'
import { getInputs, type Inputs } from './inputs.ts'
import { inLogGroup } from './operation-group.ts'
import { judge } from './outcome.ts'
import { deferDebug, flushDebug } from './output/deferred-debug.ts'
import { RemoteLog, reportFailure } from './output/remote-log.ts'
import { say } from './output/say.ts'
import { renderRunSummary, writeSummary } from './output/summary.ts'
import { createProvider } from './providers/factory.ts'
import { isTerminal, OperationInterruptedError, toSandboxFiles, type OperationOutcome, type Provider } from './providers/types.ts'
import { markMainStarted, saveLiveWork, type LiveWork } from './state.ts'
import { StreamTally } from './stream-tally.ts'
import { collectUploads } from './upload.ts'

/** DELETE budget per operation inside the runner's 7.5 s SIGINT grace. */
const CANCEL_TIMEOUT_MS = 3000
/**
 * Tuning knob (not an input): silence on an event stream before it counts as dead and is resumed.
 * The service sends keepalives, so the default is generous; tests and odd proxies may lower it.
 */
const EVENTS_IDLE_TIMEOUT_ENV = 'SANDBOX_ACTION_EVENTS_IDLE_TIMEOUT_MS'

export interface MainDeps {
  exit: (code: number) => void
}

export async function run(deps: MainDeps = { exit: (code) => void exitAfterFlush(code) }): Promise<void> {
  markMainStarted()
  let inputs: Inputs
  try {
    inputs = getInputs()
  } catch (error) {
    core.setFailed(errorMessage(error))
    return
  }

  const controller = new AbortController()
  const registry = new RemoteWorkRegistry(saveLiveWork)
  const idleTimeout = Number(process.env[EVENTS_IDLE_TIMEOUT_ENV])
  const provider = createProvider({
    provider: inputs.provider,
    apiUrl: inputs.apiUrl,
    token: inputs.token,
    ...(inputs.project ? { project: inputs.project } : {}),
    registry,
    // The follower talks while a stop-commands window is open; its lines are printed once it closes.
    debug: deferDebug,
    ...(Number.isFinite(idleTimeout) && idleTimeout > 0 ? { eventsIdleTimeoutMs: idleTimeout } : {}),
  })
  const cancelRemote = (work: LiveWork): Promise<string> => provider.cancel(work, CANCEL_TIMEOUT_MS)
  const cancellation = installCancellation({ registry, cancelRemote, controller, exit: deps.exit })
  const log = new RemoteLog()
  const report: RunReport = { operations: [] }

  let failure: { error: unknown } | undefined
  try {
    const image = await prepareImage({ inputs, provider, log, signal: controller.signal, report, cache: new ImageCache(inputs, provider) })
    report.image = image
    setImageOutputs(image)
    if (inputs.run) await runCommand(inputs, provider, image, log, controller.signal, report)
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
    if (inputs.summary) await tryWriteSummary(inputs, report)
  } else if (failure) {
    // Failure persistence: what is known is written before any cleanup can go wrong or hang.
    recordInterrupted(failure.error, report)
    if (inputs.summary) await tryWriteSummary(inputs, report)
    if (registry.live().length > 0) {
      say(`Cancelling ${registry.live().length} remote operation(s) the failed step left running.`)
      await registry.cancelAll(cancelRemote)
    }
    core.setFailed(errorMessage(failure.error))
  } else if (inputs.summary) {
    await tryWriteSummary(inputs, report)
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
  if (run) core.setOutput('operation-uuid', run.id)
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

export interface RunReport {
  image?: PreparedImage
  operations: ReportedOperation[]
  buildSummary?: string
}

function setImageOutputs(image: PreparedImage): void {
  core.setOutput('image-uuid', image.uuid)
  core.setOutput('digest', image.digest ?? '')
  core.setOutput('cache-hit', String(image.cacheHit))
  core.setOutput('tag', image.tag ?? '')
}

function setRunOutputs(outcome: OperationOutcome): void {
  core.setOutput('operation-uuid', outcome.operationId)
  core.setOutput('status', outcome.status)
  core.setOutput('exit-code', outcome.exitCode === null ? '' : String(outcome.exitCode))
  core.setOutput('result-image-uuid', outcome.resultImage ?? '')
  core.setOutput('duration', (outcome.durationMs / 1000).toFixed(3))
  core.setOutput('timed-out', String(outcome.timedOut))
}

async function runCommand(
  inputs: Inputs,
  provider: Provider,
  image: PreparedImage,
  log: RemoteLog,
  signal: AbortSignal,
  report: RunReport,
): Promise<void> {
  const run = inputs.run
  if (!run) return
  let files = {}
  if (inputs.upload) {
    const placement = await collectUploads(inputs.upload)
    const stored = await provider.ensureFiles(
      Object.values(placement).map((entry) => entry.file),
      signal,
    )
    core.info(
      `Upload: ${Object.keys(placement).length} file(s) under ${inputs.upload.to}; ${stored.uploaded} new (${stored.uploadedBytes} bytes), the rest already on the service.`,
    )
    files = toSandboxFiles(placement, stored.ids)
  }

  const display = run.shell ? run.command : JSON.stringify([run.command, ...(run.args ?? [])])
  // Like `docker run`: a built image's USER runs the command, through the spawn's own uid/gid.
  const defaults = image.runDefaults
  const judging = { timeoutSeconds: run.timeoutSeconds, expectsExitCode: true }
  let tally: StreamTally | undefined
  const { outcome, group } = await inLogGroup(log, `Run: ${firstLine(display)}`, 'run', judging, (group) => {
    // In debug runs, account for every remote byte so a log can prove nothing was lost or repeated.
    tally = core.isDebug() ? new StreamTally(group) : undefined
    return provider.run(
      {
        image: image.uuid,
        command: run.command,
        shell: run.shell,
        ...(run.args ? { args: run.args } : {}),
        // Like `docker run`: a built image's ENV and WORKDIR apply unless the inputs say otherwise.
        env: { ...defaults?.env, ...run.env },
        ...(run.cwd ? { cwd: run.cwd } : defaults ? { cwd: defaults.cwd } : {}),
        ...(defaults && (defaults.uid !== 0 || defaults.gid !== 0) ? { uid: defaults.uid, gid: defaults.gid } : {}),
        timeoutSeconds: run.timeoutSeconds,
        disposable: run.disposable,
        files,
        outputLimitBytes: inputs.outputLimitBytes,
      },
      tally ?? group,
      { label: 'run', signal, deadlineMs: inputs.deadlineSeconds * 1000 },
    )
  })
  if (tally) core.debug(`Remote output of operation ${outcome.operationId}: ${tally.describe()}`)
  report.operations.push({ label: 'run', outcome, expectsExitCode: true })
  // Failure persistence: outputs first, so a later step sees them whatever happens next.
  setRunOutputs(outcome)

  const verdict = judge(outcome, 'The command', judging)
  if (verdict.ok) return
  if (verdict.kind === 'command' && outcome.exitCode !== null && !outcome.timedOut && !inputs.failOnExitCode) {
    core.info(`${verdict.message}. fail-on-exit-code is false, so the step continues.`)
    return
  }
  reportFailure(group.tail(), verdict.message)
  throw new Error(verdict.message)
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? ''
  const more = text.includes('\n') ? ' …' : ''
  return line.length > 120 ? `${line.slice(0, 119)}…` : `${line}${more}`
}

async function tryWriteSummary(inputs: Inputs, report: RunReport): Promise<void> {
  try {
    const parts: string[] = []
    if (report.buildSummary) parts.push(report.buildSummary)
    if (report.operations.length) {
      parts.push(
        renderRunSummary({
          title: 'Remote sandbox operations',
          provider: inputs.provider,
          endpoint: inputs.apiUrl,
          operations: report.operations.map(({ label, outcome, expectsExitCode }) => ({
            label,
            operationId: outcome.operationId,
            status: outcome.status,
            exitCode: outcome.exitCode,
            durationMs: outcome.durationMs,
            resultImage: outcome.resultImage,
            timedOut: outcome.timedOut,
            expectsExitCode,
            ...(expectsExitCode ? { timeoutSeconds: inputs.timeoutSeconds } : {}),
            ...(outcome.error ? { error: outcome.error } : {}),
          })),
        }),
      )
    }
    if (parts.length) await writeSummary(parts.join('\n'))
  } catch (error) {
    core.warning(`Could not write the job summary: ${errorMessage(error)}`)
  }
}
