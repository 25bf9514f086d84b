/**
 * The post step (runs after the job's steps, also when the job was cancelled): cancels any remote
 * work main started that is still running, on whichever service it lives. It is idempotent,
 * tolerates missing state, is bounded in time, and never fails the job: every problem is a warning.
 */
import * as core from '@actions/core'
import { errorMessage } from './errors.ts'
import { createCleanupProvider, TOKEN_ENV } from './providers/factory.ts'
import { readLiveWork, type LiveWork, type ProviderName } from './state.ts'

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
  const { work, problem } = readLiveWork()
  if (problem) core.warning(`Post step: ${problem}.`)
  const pending = work.filter((item) => item.state !== 'done')
  if (pending.length === 0) {
    core.info('No remote work left running; nothing to clean up.')
    return
  }
  const deadline = AbortSignal.timeout(POST_DEADLINE_MS)
  // Work reached through other work (a command through its sandbox's agent) goes first: ended at the
  // same time as its parent, it would be asked after at an address that is gone, retried until the
  // budget runs out, and reported as a warning about a command that no longer exists.
  const reachedThroughParent = (item: LiveWork): boolean => item.parentId !== undefined
  await Promise.all(pending.filter(reachedThroughParent).map((item) => settle(item, deadline)))
  await Promise.all(pending.filter((item) => !reachedThroughParent(item)).map((item) => settle(item, deadline)))
}

function tokenFor(provider: ProviderName): string {
  return core.getInput('token') || process.env[TOKEN_ENV[provider]] || ''
}

async function settle(work: LiveWork, signal: AbortSignal): Promise<void> {
  const what = `${work.label} (${work.kind} ${work.id})`
  const token = tokenFor(work.provider)
  if (!token) {
    core.warning(`Cannot check ${what}: no token in the inputs or ${TOKEN_ENV[work.provider]}.`)
    return
  }
  core.setSecret(token)
  try {
    const provider = createCleanupProvider(work, token)
    const alive = await provider.isAlive(work, signal)
    if (alive === false) {
      core.info(`${what} already ended.`)
      return
    }
    if (alive === null) {
      core.info(`${what} is unknown to the service; nothing to cancel.`)
      return
    }
    const result = await provider.cancel(work, CANCEL_TIMEOUT_MS)
    core.info(`Cancelled ${what}: ${result}.`)
  } catch (error) {
    core.warning(`Could not cancel ${what}: ${errorMessage(error)}`)
  }
}
