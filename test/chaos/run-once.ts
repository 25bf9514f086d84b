/**
 * One chaos run: the bundled action run the way the runner runs it, through a chaos proxy that
 * injects the faults of the run's plan, with a SIGINT (then SIGTERM 7.5 s later) at the planned
 * moment. Collects everything the checks need; judging is verdict.ts's job.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { ContreeEmulator, OperationStatus } from '../emulator/contree/types.ts'
import { startAction, type ActionResult } from '../helpers/run-action.ts'
import { startChaosProxy, type Exchange } from './chaos-proxy.ts'
import { makePlan, type RunPlan } from './plan.ts'

/** Silence on an event stream before the action gives it up: stalls past it stay cheap. */
export const EVENTS_IDLE_TIMEOUT_MS = 800
/** A run that has not ended by then is killed and counts as hung. */
const RUN_DEADLINE_MS = 120_000
/** How long operations may take to end after the action did (a cancel is asynchronous; an orphan runs on). */
const SETTLE_TIMEOUT_MS = 30_000
const TERMINAL = new Set<OperationStatus>(['SUCCESS', 'FAILED', 'CANCELLED'])
/**
 * What the action's signal handler prints: at once, or when a run's window is open, as soon as the
 * aborted run has closed it (a few ms later), so it still bounds when the signal was acknowledged.
 */
const SIGNAL_ACK = /Received SIG(INT|TERM)/

export interface SignalRecord {
  /** performance.now() when SIGINT was sent (run times are relative to RunRecord.startedAt). */
  sentAt: number
  /** performance.now() by which the action had printed that it received it (see `watchForAck`). */
  acknowledgedAt?: number
  /** Characters of stdout the action had printed when the signal was sent. */
  printedAtSignal: number
}

export interface RunRecord {
  seed: number
  /** The API token the action was given; it must never be printed. */
  token: string
  plan: RunPlan
  result: ActionResult
  /** Every value the action saved for its remote work, in order (the step state file keeps them all). */
  savedWork: string[]
  exchanges: Exchange[]
  /** performance.now() when the run's clock started (the proxy listening, just before the action). */
  startedAt: number
  signal?: SignalRecord
  /** The action was still running at the run deadline and was killed. */
  hung: boolean
  /** Final status of every operation a forwarded spawn created (undefined: the emulator does not know it). */
  operations: Map<string, OperationStatus | undefined>
  /** Every operation had reached a terminal status within the settle bound. */
  settled: boolean
  durationMs: number
}

export interface ChaosEnvironment {
  emulator: ContreeEmulator
  token: string
}

export async function runOnce(seed: number, env: ChaosEnvironment): Promise<RunRecord> {
  const plan = makePlan(seed)
  const started = performance.now()
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `chaos-${seed}-`))
  const workspace = path.join(scratch, 'workspace')
  const runnerDir = path.join(scratch, 'runner')
  fs.mkdirSync(workspace)
  fs.mkdirSync(runnerDir)
  for (const file of plan.payload.files) fs.writeFileSync(path.join(workspace, file.name), file.content)

  let sendSignal: () => void = () => undefined
  const proxy = await startChaosProxy({
    upstreamUrl: env.emulator.url,
    rules: plan.faults,
    onSpawnRequest: () => {
      if (plan.signal?.kind === 'on-spawn') sendSignal()
    },
  })
  try {
    const action = startAction({
      workspace,
      runnerDir,
      inputs: {
        'api-url': proxy.url,
        token: env.token,
        image: 'tag:busybox:latest',
        run: plan.payload.command,
        timeout: '120',
        // Well above any payload, so the service never drops output.
        'output-limit': '64MiB',
        ...(plan.payload.files.length > 0 ? { upload: plan.payload.files.map((file) => file.name).join('\n') } : {}),
      },
      env: { SANDBOX_ACTION_EVENTS_IDLE_TIMEOUT_MS: String(EVENTS_IDLE_TIMEOUT_MS) },
    })

    let signal: SignalRecord | undefined
    let printed = 0
    let recent = ''
    sendSignal = () => {
      if (signal !== undefined || action.child.exitCode !== null || action.child.signalCode !== null) return
      signal = { sentAt: performance.now(), printedAtSignal: printed }
      action.cancel()
    }
    action.child.stdout?.on('data', (chunk: string) => {
      printed += chunk.length
      if (plan.signal?.kind === 'after-printed' && printed >= plan.signal.chars) sendSignal()
      // The acknowledgement counts from the next turn of the event loop: a request whose bytes were
      // already in the kernel when the action printed it is read in this turn, so it is not "after".
      recent = (recent + chunk).slice(-200)
      if (signal !== undefined && signal.acknowledgedAt === undefined && SIGNAL_ACK.test(recent)) {
        const acknowledged = signal
        setImmediate(() => (acknowledged.acknowledgedAt ??= performance.now()))
      }
    })
    const timers: NodeJS.Timeout[] = []
    if (plan.signal?.kind === 'after-ms') timers.push(setTimeout(sendSignal, plan.signal.ms))

    let hung = false
    const deadline = setTimeout(() => {
      hung = true
      action.child.kill('SIGKILL')
    }, RUN_DEADLINE_MS)
    const result = await action.done
    clearTimeout(deadline)
    for (const timer of timers) clearTimeout(timer)
    // Let the acknowledgement's setImmediate run before anything reads it.
    await new Promise((resolve) => setImmediate(resolve))

    const savedWork = savedValues(fs.readFileSync(path.join(runnerDir, 'state'), 'utf8'), 'remoteWork')
    const created = proxy.exchanges.flatMap((exchange) => (exchange.operationId === undefined ? [] : [exchange.operationId]))
    const { operations, settled } = await settle(env.emulator, created)
    return {
      seed,
      token: env.token,
      plan,
      result,
      savedWork,
      exchanges: proxy.exchanges,
      startedAt: proxy.startedAt,
      ...(signal ? { signal } : {}),
      hung,
      operations,
      settled,
      durationMs: performance.now() - started,
    }
  } finally {
    await proxy.close()
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

/** All values written for `name` in a runner file-command file (`name<<delimiter` heredocs), in order. */
function savedValues(text: string, name: string): string[] {
  const values: string[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const heredoc = new RegExp(`^${name}<<(.+)$`).exec(lines[i] as string)
    if (!heredoc) continue
    const value: string[] = []
    for (i++; i < lines.length && lines[i] !== heredoc[1]; i++) value.push(lines[i] as string)
    values.push(value.join('\n'))
  }
  return values
}

/** Waits (bounded) until every operation is terminal on the service; cancelling is asynchronous there. */
async function settle(emulator: ContreeEmulator, ids: readonly string[]): Promise<{ operations: Map<string, OperationStatus | undefined>; settled: boolean }> {
  const end = Date.now() + SETTLE_TIMEOUT_MS
  for (;;) {
    const known = new Map(emulator.operations().map((op) => [op.uuid, op.status]))
    const operations = new Map(ids.map((id) => [id, known.get(id)]))
    const settled = [...operations.values()].every((status) => status !== undefined && TERMINAL.has(status))
    if (settled || Date.now() > end) return { operations, settled }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
