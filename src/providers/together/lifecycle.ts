/**
 * A sandbox's way to `running`, and one readable message when it does not get there. The checks come
 * in the order the SDKs use (unrecovered, recovering, still moving, failed to start, the other end
 * state, anything else), and a `status_reason` the service gives comes with what to do about it.
 */
import type { TogetherApi } from './api.ts'
import { WaitBudget, type WaitOptions } from './wait-budget.ts'
import type { Sandbox, SandboxStatus } from './wire.ts'

/** What to do about a reason the service gives for a sandbox that stopped or never started. */
const REASON_ADVICE: Readonly<Record<string, string>> = {
  internal_error: 'the service could not start it, typically because the snapshot\'s image is missing or damaged; build the snapshot again (no-cache) or use another one',
  out_of_capacity: 'the service had no room for it right now; run the job again in a little while',
  oom_killed: 'it ran out of memory; raise the memory input',
  crashed: 'its VM crashed; a new run starts a new sandbox',
  evicted: 'it was evicted from its node; a new run starts a new sandbox',
  node_lost: 'the node it ran on was lost; a new run starts a new sandbox',
  cluster_lost: 'the cluster it ran on was lost; a new run starts a new sandbox',
}

/** Statuses a sandbox leaves by itself; waiting on any other returns it unchanged. */
const SETTLING: ReadonlySet<SandboxStatus> = new Set(['starting', 'terminating'])

export function isSettling(status: string): boolean {
  return SETTLING.has(status as SandboxStatus)
}

/** A sandbox did not reach the status the action needed. */
export class SandboxLifecycleError extends Error {
  readonly sandboxId: string
  readonly status: string
  readonly reason: string | undefined
  constructor(sandbox: Pick<Sandbox, 'id' | 'status' | 'status_reason'>, expected: 'running' | 'terminated') {
    super(describeLifecycleFailure(sandbox, expected))
    this.name = 'SandboxLifecycleError'
    this.sandboxId = sandbox.id
    this.status = sandbox.status
    this.reason = sandbox.status_reason || undefined
  }
}

export function describeLifecycleFailure(sandbox: Pick<Sandbox, 'id' | 'status' | 'status_reason'>, expected: 'running' | 'terminated'): string {
  const id = `Sandbox ${sandbox.id}`
  const status = sandbox.status
  const reason = sandbox.status_reason || undefined
  const because = reason ? ` (${reason})` : ''
  const advice = reason ? REASON_ADVICE[reason] : undefined
  if (status === 'unrecovered') return `${id} crashed and could not be recovered${because}; it is gone for good, and a new run starts a new sandbox.`
  if (status === 'recovering') return `${id} is being recovered by the service after a failure${because}; it may come back, but not in time for this step.`
  if (isSettling(status)) return `${id} was still ${status} when the wait for it ended; the service did not settle it in time.`
  if (expected === 'running' && status === 'failed_to_start') return `${id} failed to start${because}: ${advice ?? 'a new run starts a new sandbox'}.`
  if (expected === 'running' && status === 'terminated') return `${id} terminated instead of running${because}${advice ? `: ${advice}` : ''}.`
  if (expected === 'terminated' && status === 'running') return `${id} is still running: the request to terminate it did not take effect.`
  return `${id} is ${status}${because}, not ${expected}.`
}

export interface WaitForRunningOptions extends WaitOptions {
  log?: (message: string) => void
}

/** A wait answered at once with a status still moving is repeated no faster than this. */
const REWAIT_PAUSE_MS = 500

/**
 * Waits until the sandbox (as last seen, e.g. the create's answer) is `running`, and returns it with
 * its agent's address. Anything else it settles on is a SandboxLifecycleError.
 */
export async function waitUntilRunning(api: Pick<TogetherApi, 'waitForSandbox'>, sandbox: Sandbox, opts: WaitForRunningOptions = {}): Promise<Sandbox> {
  const wait = new WaitBudget(opts, `sandbox ${sandbox.id} to start`)
  let current = sandbox
  while (isSettling(current.status)) {
    wait.check()
    const asked = performance.now()
    try {
      current = await api.waitForSandbox(current.id, wait.signal())
    } catch (error) {
      throw wait.translate(error)
    }
    opts.log?.(`sandbox ${current.id}: ${current.status}${current.status_reason ? ` (${current.status_reason})` : ''}`)
    if (isSettling(current.status) && performance.now() - asked < REWAIT_PAUSE_MS) await wait.pause(REWAIT_PAUSE_MS)
  }
  if (current.status !== 'running') throw new SandboxLifecycleError(current, 'running')
  return current
}
