/**
 * A pull request's preview on Together Sandbox: a sandbox started from the PR's snapshot, tagged with
 * the preview's name, the PR and the repository, so that every later run finds it on the service (not
 * in anyone's memory). A new preview is live work until it runs (and its start command and port
 * checks passed); only then is it handed over, and only then are the earlier ones ended. A signal
 * before the hand-over therefore ends the new sandbox (the job's cancellation does it) and leaves the
 * earlier preview running.
 */
import { randomUUID } from 'node:crypto'
import { errorMessage } from '../../errors.ts'
import type { Sleep } from '../../http/sleep.ts'
import { formatDuration } from '../../output/format.ts'
import type { PreviewOutcome, PreviewPart, PreviewRequest, PreviewTarget, ProviderContext } from '../types.ts'
import type { AgentClient } from './agent.ts'
import type { TogetherApi } from './api.ts'
import { createOnce } from './create-once.ts'
import { waitUntilRunning } from './lifecycle.ts'
import { TAG_COMMIT, TAG_REPOSITORY, TAG_REQUEST } from './snapshots.ts'
import { DeadlineExceededError, WaitBudget } from './wait-budget.ts'
import type { ExecItem, Sandbox, Tags } from './wire.ts'

/** Tag keys of a preview sandbox (with TAG_REPOSITORY and TAG_COMMIT). */
export const TAG_PREVIEW = 'sandbox-action.preview'
export const TAG_PULL_REQUEST = 'sandbox-action.pull-request'

/** A sandbox in one of these is no preview any more: nothing to end. */
const GONE: ReadonlySet<string> = new Set(['terminating', 'terminated', 'failed_to_start', 'unrecovered'])
/** How often the port list and the start command are looked at while waiting for the port. */
const PORT_POLL_MS = 500

export interface PreviewDeps {
  api: Pick<TogetherApi, 'createSandbox' | 'findSandboxes' | 'allSandboxes' | 'waitForSandbox' | 'terminateSandbox'>
  agentFor: (sandbox: Sandbox) => Pick<AgentClient, 'createExec' | 'getExec' | 'execFrames' | 'listPorts'>
  /** The API base recorded with the live work. */
  endpoint: string
}

export interface PreviewSettings {
  cpu: number
  memoryBytes: number
  /** Bound on ending one sandbox (a failed new one, each earlier one). */
  cleanupTimeoutMs: number
  sleep?: Sleep
}

const sandboxWork = (id: string) => ({ provider: 'together', kind: 'sandbox', id }) as const

/** The tags every sandbox of this PR's preview carries; a listing by them finds all of them. */
export function previewTags(target: PreviewTarget): Tags {
  return { [TAG_PREVIEW]: target.name, [TAG_REPOSITORY]: target.repository, [TAG_PULL_REQUEST]: String(target.pullRequest) }
}

export async function replacePreview(snapshotId: string, request: PreviewRequest, ctx: ProviderContext, deps: PreviewDeps, settings: PreviewSettings): Promise<PreviewOutcome> {
  const deadline = performance.now() + request.deadlineMs
  const created = await createPreviewSandbox(snapshotId, request, ctx, deps, settings)
  ctx.registry.add({ ...sandboxWork(created.id), endpoint: deps.endpoint, label: `preview ${request.name} (sandbox)` })
  ctx.debug(`preview sandbox ${created.id} created from snapshot ${snapshotId}`)

  let up: { sandbox: Sandbox; ports: Array<{ port: number }>; startExecId?: string }
  try {
    up = await bringUp(created, request, ctx, deps, { deadline, ...(settings.sleep ? { sleep: settings.sleep } : {}) })
  } catch (error) {
    // On a signal the job's cancellation ends it (it is live work); otherwise it is ended here.
    if (!ctx.signal.aborted) await endNew(created.id, ctx, deps, settings)
    if (error instanceof DeadlineExceededError) throw new Error(`The preview sandbox ${created.id} was not up within ${formatDuration(request.deadlineMs)}: ${error.message}`, { cause: error })
    throw error
  }
  // The hand-over: from here on it is the PR's preview, not work for the job's cancellation to end.
  // A signal that came during the last await has already asked the service to end it: not handed over.
  ctx.signal.throwIfAborted()
  ctx.registry.finish(sandboxWork(created.id))

  const { replaced, leftBehind } = await endEarlierPreviews(request, up.sandbox, deps, settings)
  const outputs: Record<string, string> = { 'sandbox-id': up.sandbox.id, 'snapshot-id': snapshotId }
  if (up.startExecId) outputs['exec-id'] = up.startExecId
  const expiresAt = expiry(up.sandbox)
  return {
    parts: [{ what: 'sandbox', id: up.sandbox.id }],
    snapshotId,
    sandboxId: up.sandbox.id,
    ...(expiresAt ? { expiresAt } : {}),
    ports: up.ports,
    reach: reachCommands(up.sandbox.id),
    replaced,
    leftBehind,
    outputs,
  }
}

/** Every sandbox of the PR's preview that is still up (found by its tags). */
export async function findPreviewSandboxes(target: PreviewTarget, api: Pick<TogetherApi, 'allSandboxes'>, signal: AbortSignal): Promise<PreviewPart[]> {
  const sandboxes = await api.allSandboxes(previewTags(target), { signal })
  return sandboxes.filter((sandbox) => !GONE.has(sandbox.status)).map((sandbox) => ({ what: 'sandbox', id: sandbox.id }))
}

/** Ends one preview sandbox; one that already ended, or that the service no longer knows, is gone. */
export async function removePreviewSandbox(id: string, api: Pick<TogetherApi, 'terminateSandbox'>, timeoutMs: number): Promise<'removed' | 'gone'> {
  const result = await api.terminateSandbox(id, { timeoutMs })
  return result === 'terminating' ? 'removed' : 'gone'
}

/** The CLI commands that reach the sandbox (the service gives no public URL for a port). */
export function reachCommands(sandboxId: string): string {
  return [
    '# with TOGETHER_API_KEY set (npm i -g together-sandbox-cli)',
    `together-sandbox sandboxes get ${sandboxId}`,
    `together-sandbox sandboxes exec run ${sandboxId} -it -- sh`,
  ].join('\n')
}

/** The ttl counts from the start (from the creation while it has not started). */
function expiry(sandbox: Sandbox): Date | undefined {
  if (sandbox.ttl === null || sandbox.ttl === undefined) return undefined
  const from = Date.parse(sandbox.started_at ?? sandbox.created_at)
  return Number.isFinite(from) ? new Date(from + sandbox.ttl * 1000) : undefined
}

async function createPreviewSandbox(snapshotId: string, request: PreviewRequest, ctx: ProviderContext, deps: PreviewDeps, settings: PreviewSettings): Promise<Sandbox> {
  const requestId = randomUUID()
  const tags: Tags = { [TAG_REQUEST]: requestId, [TAG_COMMIT]: request.commit, ...previewTags(request) }
  return createOnce({
    what: 'creating the preview sandbox',
    create: (stopRetrying) =>
      deps.api.createSandbox({ snapshot_id: snapshotId, tags, cpu: settings.cpu, memory_bytes: settings.memoryBytes, ...(request.ttlSeconds !== undefined ? { ttl: request.ttlSeconds } : {}) }, stopRetrying),
    // Not bounded by the job's signal: a sandbox an earlier attempt made must be found to be ended.
    find: async () => (await deps.api.findSandboxes({ [TAG_REQUEST]: requestId }, { limit: 1, signal: AbortSignal.timeout(30_000) }))[0] ?? null,
    stopRetrying: ctx.signal,
    log: ctx.debug,
  })
}

interface BringUpClock {
  deadline: number
  sleep?: Sleep
}

/** Running, the start command started, the port open: or an error saying which step failed. */
async function bringUp(
  created: Sandbox,
  request: PreviewRequest,
  ctx: ProviderContext,
  deps: PreviewDeps,
  clock: BringUpClock,
): Promise<{ sandbox: Sandbox; ports: Array<{ port: number }>; startExecId?: string }> {
  const waitOptions = { signal: ctx.signal, deadline: clock.deadline, log: ctx.debug, ...(clock.sleep ? { sleep: clock.sleep } : {}) }
  const sandbox = await waitUntilRunning(deps.api, created, waitOptions)
  const agent = deps.agentFor(sandbox)
  let startExec: ExecItem | undefined
  if (request.start) {
    startExec = await agent.createExec(
      {
        command: '/bin/sh',
        args: ['-c', request.start.command],
        autostart: true,
        ...(Object.keys(request.start.env).length ? { env: request.start.env } : {}),
        ...(request.start.cwd ? { cwd: request.start.cwd } : {}),
      },
      ctx.signal,
    )
  }
  const wait = new WaitBudget(waitOptions, `port ${request.waitForPort ?? ''} of sandbox ${sandbox.id} to open`)
  let ports: Array<{ port: number }> = []
  let problem: string | undefined
  try {
    for (;;) {
      wait.check()
      ports = (await agent.listPorts(wait.signal())).ports.map(({ port }) => ({ port })).sort((a, b) => a.port - b.port)
      if (request.waitForPort === undefined || ports.some(({ port }) => port === request.waitForPort)) break
      // A start command that failed will never open the port: say so now rather than at the deadline.
      if (startExec) {
        const exec = await agent.getExec(startExec.id, wait.signal())
        if (exec !== null && exec.exitCode > 0) {
          problem = `the start command exited with ${exec.exitCode} before port ${request.waitForPort} opened`
          break
        }
      }
      await wait.pause(PORT_POLL_MS)
    }
  } catch (error) {
    const translated = wait.translate(error)
    if (translated instanceof DeadlineExceededError) problem = `port ${request.waitForPort} did not open within ${formatDuration(request.deadlineMs)} of the start`
    else throw translated
  }
  if (startExec) await showStartOutput(agent, startExec, request, problem, ctx)
  if (problem) throw new Error(`The preview sandbox ${sandbox.id} is not up: ${problem}.`)
  return { sandbox, ports, ...(startExec ? { startExecId: startExec.id } : {}) }
}

/** What the start command printed so far, in its own group (remote text, behind stop-commands). */
async function showStartOutput(agent: Pick<AgentClient, 'execFrames'>, exec: ExecItem, request: PreviewRequest, problem: string | undefined, ctx: ProviderContext): Promise<void> {
  const group = ctx.log.open(`Preview start: ${firstLine(request.start?.command ?? '')}`)
  try {
    const frames = await agent.execFrames(exec.id, AbortSignal.timeout(10_000))
    for (const frame of frames) if (frame.output) group.write(frame.type === 'stderr' ? 'stderr' : 'stdout', Buffer.from(frame.output, 'utf8'))
  } catch (error) {
    group.note(`[the start command's output could not be read: ${errorMessage(error)}]`)
  }
  group.end(problem ? `✗ ${problem}` : `✓ started (exec ${exec.id})${request.waitForPort !== undefined ? `; port ${request.waitForPort} is open` : ''}`)
  if (problem) ctx.log.reportFailure(group.tail(), `The preview's start command failed: ${problem}`)
}

async function endNew(id: string, ctx: ProviderContext, deps: PreviewDeps, settings: PreviewSettings): Promise<void> {
  try {
    await deps.api.terminateSandbox(id, { timeoutMs: settings.cleanupTimeoutMs })
    ctx.registry.finish(sandboxWork(id))
  } catch (error) {
    // It stays live work: post ends it, and its ttl in any case.
    ctx.debug(`ending the new preview sandbox ${id} failed: ${errorMessage(error)}`)
  }
}

/**
 * Ends the PR's earlier preview sandboxes. Only older ones: a newer one belongs to a newer run, which
 * ends this one once its own is up (two runs racing on one PR never end each other's new preview).
 */
async function endEarlierPreviews(request: PreviewRequest, current: Sandbox, deps: PreviewDeps, settings: PreviewSettings): Promise<{ replaced: PreviewPart[]; leftBehind: string[] }> {
  const replaced: PreviewPart[] = []
  const leftBehind: string[] = []
  let earlier: Sandbox[]
  try {
    // Not bounded by the job's signal: the new preview is up, so the old ones should go even now.
    earlier = (await deps.api.allSandboxes(previewTags(request), { signal: AbortSignal.timeout(settings.cleanupTimeoutMs) })).filter(
      (sandbox) => sandbox.id !== current.id && !GONE.has(sandbox.status) && Date.parse(sandbox.created_at) < Date.parse(current.created_at),
    )
  } catch (error) {
    leftBehind.push(`the earlier preview sandboxes could not be listed: ${errorMessage(error)}`)
    return { replaced, leftBehind }
  }
  await Promise.all(
    earlier.map(async (sandbox) => {
      try {
        await deps.api.terminateSandbox(sandbox.id, { timeoutMs: settings.cleanupTimeoutMs })
        replaced.push({ what: 'sandbox', id: sandbox.id })
      } catch (error) {
        leftBehind.push(`sandbox ${sandbox.id}: ${errorMessage(error)}`)
      }
    }),
  )
  return { replaced, leftBehind }
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? ''
  return line.length > 100 ? `${line.slice(0, 99)}…` : line
}
