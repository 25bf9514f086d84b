/**
 * The post step (runs after the job's steps, also when the job was cancelled): cancels any remote
 * operation main started that is still not finished. It is idempotent, tolerates missing state, is
 * bounded in time, and never fails the job: every problem is a warning.
 */
import * as core from '@actions/core'
import { errorMessage } from './errors.ts'
import { ContreeProvider } from './providers/contree/provider.ts'
import { isTerminal } from './providers/types.ts'
import { readRemoteWork, type RemoteWork } from './state.ts'
import { USER_AGENT } from './version.ts'

/** The post step runs inside the job's cancel window; stay well within it. */
const POST_DEADLINE_MS = 60_000
const CANCEL_TIMEOUT_MS = 10_000

export async function run(): Promise<void> {
  try {
    await cleanup()
  } catch (error) {
    core.warning(`Post-step cleanup failed: ${errorMessage(error)}`)
  }
}

async function cleanup(): Promise<void> {
  const { work, problem } = readRemoteWork()
  if (problem) core.warning(`Post step: ${problem}.`)
  const pending = work.filter((item) => item.state !== 'done')
  if (pending.length === 0) {
    core.info('No remote work left running; nothing to clean up.')
    return
  }
  const token = core.getInput('token') || process.env.CONTREE_TOKEN || ''
  if (!token) {
    core.warning(
      `Cannot check ${pending.length} remote operation(s) (${pending.map((item) => item.operationId).join(', ')}): no token in the inputs or CONTREE_TOKEN.`,
    )
    return
  }
  core.setSecret(token)
  const deadline = AbortSignal.timeout(POST_DEADLINE_MS)
  await Promise.all(pending.map((item) => settle(item, token, deadline)))
}

async function settle(work: RemoteWork, token: string, signal: AbortSignal): Promise<void> {
  const provider = new ContreeProvider({
    apiUrl: work.apiUrl,
    token,
    ...(work.project ? { project: work.project } : {}),
    userAgent: USER_AGENT,
  })
  try {
    const status = await provider.operationStatus(work.operationId, signal)
    if (status !== null && isTerminal(status)) {
      core.info(`${work.label} (operation ${work.operationId}) already ended: ${status}.`)
      return
    }
    if (status === null) {
      core.info(`${work.label} (operation ${work.operationId}) is unknown to the service; nothing to cancel.`)
      return
    }
    const result = await provider.cancel(work.operationId, CANCEL_TIMEOUT_MS)
    core.info(`Cancelled ${work.label} (operation ${work.operationId}, was ${status}): ${result}.`)
  } catch (error) {
    core.warning(`Could not cancel ${work.label} (operation ${work.operationId}): ${errorMessage(error)}`)
  }
}
