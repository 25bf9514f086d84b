/**
 * The frame a mode beside `run` works in, with main's rules (design.md "Cancellation", "Failure
 * persistence"): one provider, one registry of live work saved to state, SIGINT/SIGTERM cancelling
 * whatever is still live, and at the end the summary written before any cleanup, remote work a failure
 * left running cancelled, and the step failed with the first error. A mode only does its work and
 * fills the report; it never installs handlers or fails the step itself.
 */
import * as core from '@actions/core'
import { installCancellation, RemoteWorkRegistry, type CancelLines } from '../cancel.ts'
import { errorMessage } from '../errors.ts'
import type { Inputs } from '../inputs.ts'
import { deferDebug, flushDebug } from '../output/deferred-debug.ts'
import { RemoteLog } from '../output/remote-log.ts'
import { say, warn } from '../output/say.ts'
import { createProvider } from '../providers/factory.ts'
import type { Provider, ProviderContext, StepReport } from '../providers/types.ts'
import { saveLiveWork, type LiveWork } from '../state.ts'
import { tryWriteStepSummary } from '../step-summary.ts'

/** DELETE budget per piece of work inside the runner's 7.5 s SIGINT grace (as main). */
const CANCEL_TIMEOUT_MS = 3000
/** main's tuning knob for a silent event stream (not an input), honoured here too. */
const EVENTS_IDLE_TIMEOUT_ENV = 'SANDBOX_ACTION_EVENTS_IDLE_TIMEOUT_MS'

export interface SessionDeps {
  exit: (code: number) => void
}

export interface ModeSession {
  inputs: Inputs
  provider: Provider
  ctx: ProviderContext
}

export async function runInSession(inputs: Inputs, deps: SessionDeps, work: (session: ModeSession) => Promise<void>): Promise<void> {
  const controller = new AbortController()
  const log = new RemoteLog()
  // As in main: a signal's lines wait for an open stop-commands window (a build's log) to close.
  const cancelLines: CancelLines = {
    info: (text) => log.afterWindow(() => say(text)),
    warning: (text) => log.afterWindow(() => warn(text)),
  }
  const registry = new RemoteWorkRegistry(saveLiveWork, cancelLines)
  const idleTimeout = Number(process.env[EVENTS_IDLE_TIMEOUT_ENV])
  const provider = createProvider(inputs, {
    registry,
    debug: deferDebug,
    ...(Number.isFinite(idleTimeout) && idleTimeout > 0 ? { eventsIdleTimeoutMs: idleTimeout } : {}),
  })
  const cancelRemote = (item: LiveWork): Promise<string> => provider.cancel(item, CANCEL_TIMEOUT_MS)
  const cancellation = installCancellation({ registry, cancelRemote, controller, exit: deps.exit, lines: cancelLines })
  const report: StepReport = { operations: [], sections: [] }
  const ctx: ProviderContext = { log, signal: controller.signal, registry, report, debug: deferDebug }

  let failure: { error: unknown } | undefined
  try {
    await work({ inputs, provider, ctx })
  } catch (error) {
    failure = { error }
  }
  flushDebug()
  const signalled = cancellation.signal !== undefined
  if (signalled) {
    await cancellation.settled()
    core.setOutput('status', 'CANCELLED')
    core.setFailed(`The job was cancelled (${cancellation.signal}); remote work still running was cancelled.`)
    if (inputs.summary) await tryWriteSummary(provider, report)
  } else if (failure) {
    if (inputs.summary) await tryWriteSummary(provider, report)
    if (registry.live().length > 0) {
      say(`Cancelling ${registry.live().length} piece(s) of remote work the failed step left running.`)
      await registry.cancelAll(cancelRemote)
    }
    core.setFailed(errorMessage(failure.error))
  } else if (inputs.summary) {
    await tryWriteSummary(provider, report)
  }
  cancellation.dispose()
  if (!signalled && !failure && cancellation.signal) {
    await cancellation.settled()
    core.setFailed(`The job was cancelled (${cancellation.signal}) as the step was finishing.`)
  }
}

async function tryWriteSummary(provider: Provider, report: StepReport): Promise<void> {
  await tryWriteStepSummary(provider, report)
}
