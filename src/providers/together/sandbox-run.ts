/**
 * One command in a fresh sandbox: create it from a snapshot (never twice: an ambiguous create is
 * looked up by its own tag first), register it at once, wait until it runs, place the uploaded files
 * through its agent, run the command as an exec streamed into the run's group, then terminate the
 * sandbox unless it is meant to stay (keep-alive), in which case it is handed over as done once it
 * runs. Every failure after the sandbox exists still ends in a RunOutcome that names it.
 */
import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import path from 'node:path'
import { mapLimit } from '../../concurrency.ts'
import { errorMessage } from '../../errors.ts'
import type { Sleep } from '../../http/sleep.ts'
import { formatDuration } from '../../output/format.ts'
import type { ProviderContext, RunOutcome, RunRequest } from '../types.ts'
import type { FilePlacement, OutputSink } from '../types.ts'
import type { AgentClient } from './agent.ts'
import type { TogetherApi } from './api.ts'
import { createOnce } from './create-once.ts'
import { ExecLostError, followExecOutput } from './exec-stream.ts'
import { describeLifecycleFailure, SandboxLifecycleError, waitUntilRunning } from './lifecycle.ts'
import { TAG_COMMIT, TAG_REPOSITORY, TAG_REQUEST } from './snapshots.ts'
import { DeadlineExceededError } from './wait-budget.ts'
import type { Sandbox, Tags } from './wire.ts'

export interface SandboxRunSettings {
  cpu: number
  memoryBytes: number
  repository?: string
  commit?: string
  /** Bound on terminating the sandbox at the end, and on killing a command the action gave up on. */
  cleanupTimeoutMs: number
  /** Kept on an ephemeral sandbox beyond its deadline, so the service ends it even if this runner dies. */
  safetyTtlMarginSeconds: number
  sleep?: Sleep
}

export interface SandboxRunDeps {
  api: Pick<TogetherApi, 'createSandbox' | 'findSandboxes' | 'waitForSandbox' | 'getSandbox' | 'terminateSandbox'>
  agentFor: (sandbox: Sandbox) => Pick<AgentClient, 'createExec' | 'openExecOutput' | 'getExec' | 'deleteExec' | 'writeFile' | 'ensureDirectory'>
  /** The API base recorded with the live work. */
  endpoint: string
}

const UPLOAD_CONCURRENCY = 8

const sandboxWork = (id: string) => ({ provider: 'together', kind: 'sandbox', id }) as const
const execWork = (id: string) => ({ provider: 'together', kind: 'exec', id }) as const
/** chmod arguments per exec, well below any ARG_MAX. */
const CHMOD_BATCH_BYTES = 64 * 1024

export async function runInSandbox(snapshotId: string, request: RunRequest, ctx: ProviderContext, deps: SandboxRunDeps, settings: SandboxRunSettings): Promise<RunOutcome> {
  const started = performance.now()
  const deadline = started + request.deadlineMs
  const outputs: Record<string, string> = {}
  const sandbox = await createSandbox(snapshotId, request, ctx, deps, settings)
  outputs['sandbox-id'] = sandbox.id
  ctx.registry.add({ ...sandboxWork(sandbox.id), endpoint: deps.endpoint, label: `${request.label ?? 'run'} (sandbox${request.keepAlive ? ', keep-alive' : ''})` })

  const failed = (error: string): RunOutcome => ({ status: 'FAILED', exitCode: null, timedOut: false, error, durationMs: performance.now() - started, outputs, tail: [], id: sandbox.id })
  let running: Sandbox
  try {
    running = await waitUntilRunning(deps.api, sandbox, { signal: ctx.signal, deadline, log: ctx.debug, ...(settings.sleep ? { sleep: settings.sleep } : {}) })
  } catch (error) {
    if (ctx.signal.aborted) throw error
    // It never ran, so it never became anyone's preview: ended whether or not it was to be kept.
    await finishSandbox(sandbox.id, { keep: false }, ctx, deps, settings)
    if (error instanceof SandboxLifecycleError) return failed(error.message)
    if (error instanceof DeadlineExceededError) return failed(`sandbox ${sandbox.id} did not start within the deadline of ${formatDuration(request.deadlineMs)}`)
    throw error
  }
  // A preview outlives the step on purpose: from now on it is the user's, not live work to cancel.
  if (request.keepAlive) ctx.registry.finish(sandboxWork(sandbox.id))

  let outcome: RunOutcome
  try {
    const agent = deps.agentFor(running)
    if (request.uploads && Object.keys(request.uploads).length > 0) await placeUploads(agent, request.uploads, ctx)
    outcome = await runCommand(agent, running, request, ctx, deps, settings, { started, deadline, outputs })
  } catch (error) {
    if (ctx.signal.aborted) throw error
    outcome = failed(await explainLoss(error, sandbox.id, deps))
  }
  await finishSandbox(sandbox.id, { keep: request.keepAlive }, ctx, deps, settings)
  return outcome
}

async function createSandbox(snapshotId: string, request: RunRequest, ctx: ProviderContext, deps: SandboxRunDeps, settings: SandboxRunSettings): Promise<Sandbox> {
  const requestId = randomUUID()
  const tags: Tags = {
    [TAG_REQUEST]: requestId,
    ...(settings.repository ? { [TAG_REPOSITORY]: settings.repository } : {}),
    ...(settings.commit ? { [TAG_COMMIT]: settings.commit } : {}),
  }
  const ttl = sandboxTtl(request, settings)
  return createOnce({
    what: 'creating the sandbox',
    create: (stopRetrying) =>
      deps.api.createSandbox({ snapshot_id: snapshotId, cpu: settings.cpu, memory_bytes: settings.memoryBytes, tags, ...(ttl !== undefined ? { ttl } : {}) }, stopRetrying),
    // Not bounded by the job's signal: a sandbox an earlier attempt made must be found to be cancelled.
    find: async () => (await deps.api.findSandboxes({ [TAG_REQUEST]: requestId }, { limit: 1, signal: AbortSignal.timeout(30_000) }))[0] ?? null,
    stopRetrying: ctx.signal,
    log: ctx.debug,
    ...(settings.sleep ? { sleep: settings.sleep } : {}),
  })
}

/**
 * The sandbox's lifetime on the service. A kept sandbox lives as long as the ttl input says (or until
 * someone ends it); an ephemeral one is terminated by the action, and also gets a ttl of its deadline
 * plus a margin, so that a runner that dies before post cannot leave it running forever.
 */
function sandboxTtl(request: RunRequest, settings: SandboxRunSettings): number | undefined {
  if (request.keepAlive) return request.ttlSeconds
  const safety = Math.ceil(request.deadlineMs / 1000) + settings.safetyTtlMarginSeconds
  return request.ttlSeconds === undefined ? safety : Math.min(request.ttlSeconds, safety)
}

interface RunClock {
  started: number
  deadline: number
  outputs: Record<string, string>
}

async function runCommand(
  agent: ReturnType<SandboxRunDeps['agentFor']>,
  sandbox: Sandbox,
  request: RunRequest,
  ctx: ProviderContext,
  deps: SandboxRunDeps,
  settings: SandboxRunSettings,
  clock: RunClock,
): Promise<RunOutcome> {
  const argv = request.shell ? { command: '/bin/sh', args: ['-c', request.command] } : { command: request.command, args: request.args ?? [] }
  const display = request.shell ? request.command : JSON.stringify([request.command, ...(request.args ?? [])])
  const group = ctx.log.open(request.title ?? `Run: ${firstLine(display)}`)
  const execStarted = performance.now()
  let exec
  try {
    exec = await agent.createExec(
      { ...argv, autostart: true, ...(Object.keys(request.env).length ? { env: request.env } : {}), ...(request.cwd ? { cwd: request.cwd } : {}) },
      ctx.signal,
    )
  } catch (error) {
    group.end(`✗ run: the command could not be started: ${errorMessage(error)}`)
    throw error
  }
  clock.outputs['exec-id'] = exec.id
  ctx.registry.add({ ...execWork(exec.id), parentId: sandbox.id, endpoint: deps.endpoint, label: request.label ?? 'run' })

  const timeoutAt = execStarted + request.timeoutSeconds * 1000
  const result = (fields: Pick<RunOutcome, 'status' | 'exitCode' | 'timedOut' | 'error'>): RunOutcome => ({
    ...fields,
    durationMs: performance.now() - execStarted,
    outputs: clock.outputs,
    tail: group.tail(),
    id: sandbox.id,
  })
  try {
    const end = await followExecOutput(agent, exec.id, group, {
      signal: ctx.signal,
      deadline: Math.min(timeoutAt, clock.deadline),
      log: ctx.debug,
      ...(settings.sleep ? { sleep: settings.sleep } : {}),
    })
    ctx.registry.finish(execWork(exec.id))
    if (end.fromRecord) group.note('[the last output of the command could not be streamed; its exit code was read from the agent]')
    const outcome = result({ status: 'SUCCESS', exitCode: end.exitCode, timedOut: false, error: null })
    group.end(`${end.exitCode === 0 ? '✓' : '✗'} run: exit code ${end.exitCode} in ${formatDuration(outcome.durationMs)}`)
    return outcome
  } catch (error) {
    if (ctx.signal.aborted) {
      group.end('✗ run: cancelled')
      throw error
    }
    if (error instanceof DeadlineExceededError) {
      // The action's own limit: the command is killed; the sandbox goes with it unless it is kept.
      const killed = await killExec(agent, exec.id, settings.cleanupTimeoutMs, ctx)
      // Whichever came first: the command's timeout, or the run's deadline.
      const timedOut = timeoutAt <= clock.deadline
      const outcome = timedOut
        ? result({ status: 'SUCCESS', exitCode: null, timedOut: true, error: null })
        : result({ status: 'FAILED', exitCode: null, timedOut: false, error: `the run did not finish within its deadline of ${formatDuration(clock.deadline - clock.started)}` })
      group.end(`✗ run: ${timedOut ? `timed out after ${request.timeoutSeconds} s` : 'deadline reached'}${killed ? '; the command was killed' : ''}`)
      return outcome
    }
    const reason = await explainLoss(error, sandbox.id, deps)
    group.end(`✗ run: ${reason}`)
    return result({ status: 'FAILED', exitCode: null, timedOut: false, error: reason })
  }
}

async function killExec(agent: ReturnType<SandboxRunDeps['agentFor']>, execId: string, timeoutMs: number, ctx: ProviderContext): Promise<boolean> {
  try {
    await agent.deleteExec(execId, { timeoutMs })
    ctx.registry.finish(execWork(execId))
    return true
  } catch (error) {
    ctx.debug(`killing exec ${execId} failed: ${errorMessage(error)}`)
    return false
  }
}

/** Why a command or its sandbox was lost: the sandbox's own state says it best (an OOM kill, say). */
async function explainLoss(error: unknown, sandboxId: string, deps: SandboxRunDeps): Promise<string> {
  if (!(error instanceof ExecLostError)) return errorMessage(error)
  try {
    const sandbox = await deps.api.getSandbox(sandboxId, AbortSignal.timeout(10_000))
    if (sandbox && sandbox.status !== 'running') return describeLifecycleFailure(sandbox, 'running')
  } catch {
    // The exec's own failure is still worth reporting.
  }
  return error.message
}

/** Ends an ephemeral sandbox (bounded); a kept one is left alone. */
async function finishSandbox(sandboxId: string, how: { keep: boolean }, ctx: ProviderContext, deps: SandboxRunDeps, settings: SandboxRunSettings): Promise<void> {
  if (how.keep) {
    ctx.registry.finish(sandboxWork(sandboxId))
    return
  }
  try {
    await deps.api.terminateSandbox(sandboxId, { timeoutMs: settings.cleanupTimeoutMs })
    ctx.registry.finish(sandboxWork(sandboxId))
  } catch (error) {
    // It stays live work: post terminates it, and its ttl ends it in any case.
    ctx.debug(`terminating sandbox ${sandboxId} failed: ${errorMessage(error)}`)
  }
}

/**
 * Uploads through the agent's filesystem: directories first (parents before children; the agent
 * creates one level at a time), then the files; the agent creates them 0644 and has no mode field, so
 * other modes are set with one chmod per mode afterwards. Owners stay what the agent makes them.
 */
async function placeUploads(agent: ReturnType<SandboxRunDeps['agentFor']>, uploads: FilePlacement, ctx: ProviderContext): Promise<void> {
  const targets = Object.keys(uploads).sort()
  const dirs = new Set<string>()
  for (const target of targets) {
    for (let dir = path.posix.dirname(target); dir !== '/' && dir !== '.'; dir = path.posix.dirname(dir)) dirs.add(dir)
  }
  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1))) {
    await agent.ensureDirectory(dir, ctx.signal)
  }
  await mapLimit(targets, UPLOAD_CONCURRENCY, async (target) => {
    const { file } = uploads[target] as FilePlacement[string]
    await agent.writeFile(target, () => createReadStream(file.absPath, { highWaterMark: 1 << 20 }), file.size, ctx.signal)
  })
  const byMode = new Map<string, string[]>()
  for (const target of targets) {
    const mode = (uploads[target] as FilePlacement[string]).mode.replace(/^0+(?=\d{3})/, '')
    if (mode === '644') continue
    byMode.set(mode, [...(byMode.get(mode) ?? []), target])
  }
  for (const [mode, paths] of byMode) {
    for (const batch of batches(paths)) await chmod(agent, mode, batch, ctx)
  }
}

async function chmod(agent: ReturnType<SandboxRunDeps['agentFor']>, mode: string, paths: string[], ctx: ProviderContext): Promise<void> {
  const quiet: OutputSink = { write: (_stream, chunk) => ctx.debug(`chmod: ${Buffer.from(chunk).toString('utf8').trim()}`) }
  // As root: the agent creates files as itself, which the default exec user (1000:1000) may not own.
  const exec = await agent.createExec({ command: 'chmod', args: [mode, '--', ...paths], autostart: true, user: '0:0' }, ctx.signal)
  const end = await followExecOutput(agent, exec.id, quiet, { signal: ctx.signal, deadline: performance.now() + 60_000, log: ctx.debug })
  if (end.exitCode !== 0) throw new Error(`uploaded files could not be given mode ${mode} (chmod exited with ${end.exitCode})`)
}

function* batches(paths: string[]): Generator<string[]> {
  let batch: string[] = []
  let bytes = 0
  for (const item of paths) {
    if (batch.length > 0 && bytes + item.length > CHMOD_BATCH_BYTES) {
      yield batch
      batch = []
      bytes = 0
    }
    batch.push(item)
    bytes += item.length + 1
  }
  if (batch.length > 0) yield batch
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? ''
  const more = text.includes('\n') ? ' …' : ''
  return line.length > 120 ? `${line.slice(0, 119)}…` : `${line}${more}`
}
