// The life of one instance operation: PENDING → ASSIGNED → EXECUTING, copy the image tree, place
// the files, check the working directory and the executable, run the command in the sandbox, stream
// its output (up to the cap) into the event log, and turn the root into the result image.
import type { ChildProcess } from 'node:child_process'
import { constants as osConstants, hostname } from 'node:os'
import { join, posix } from 'node:path'
import { STANDARD_PATH } from '../oci-image.ts'
import type { FileRecord } from './file-store.ts'
import type { ImageRecord, ImageStore } from './image-store.ts'
import type { Operation } from './operations.ts'
import { killGroup, type Sandbox } from './sandbox.ts'
import { encodeStream } from './stream-repr.ts'

/** Raw bytes per stdout/stderr event, like the real init's read buffer. */
export const MAX_EVENT_BYTES = 64 * 1024
const SECRET_SUFFIXES = ['token', 'secret', 'password', 'api_key', 'credentials', 'authorization']

export interface SpawnFile {
  file: FileRecord
  path: string
  mode: number
  uid: number
  gid: number
}

export interface SpawnSpec {
  command: string
  args: string[]
  shell: boolean
  env: Record<string, string>
  cwd: string
  timeout: number
  disposable: boolean
  truncateAt: number
  files: SpawnFile[]
  uid: number
  gid: number
  stdin: Buffer | null
}

export interface RunnerContext {
  images: ImageStore
  dataDir: string
  sandbox: Sandbox
  stateDelayMs: number
  legacyCompletionFields: boolean
  /** Process groups alive now, so close() can kill them. */
  liveGroups: Set<number>
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function redactEnv(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(env)) {
    const lower = key.toLowerCase()
    out[key] = SECRET_SUFFIXES.some((suffix) => lower.endsWith(suffix)) ? '<redacted>' : value
  }
  return out
}

const ZERO_RESOURCES = {
  user_time_us: 0,
  sys_time_us: 0,
  max_rss_kb: 0,
  shared_memory: 0,
  unshared_memory: 0,
  swaps: 0,
  minor_faults: 0,
  major_faults: 0,
  voluntary_ctx_switches: 0,
  involuntary_ctx_switches: 0,
  block_input_ops: 0,
  block_output_ops: 0,
  ipc_msgs_sent: 0,
  ipc_msgs_received: 0,
  signals_received: 0,
}

/** Appends the completion event after the record is final, so a client reacting to it reads a terminal status. */
export function completeOperation(ctx: { legacyCompletionFields: boolean }, op: Operation): void {
  op.finishedMs = Date.now()
  const durationMs = op.finishedMs - op.createdMs
  const data: Record<string, unknown> = {
    status: op.status,
    duration_ms: durationMs,
    result_image_uuid: op.resultImageUuid,
    error: op.error,
    image_size_bytes: op.imageSize ?? 0,
  }
  if (ctx.legacyCompletionFields) {
    data.duration = durationMs / 1000
    data.result_image = op.resultImageUuid
  }
  op.log.finish(data)
}

/**
 * One output stream against its cap (truncate_output_at): bytes up to the cap are streamed and kept
 * for the operation record, the rest are only counted.
 */
class CappedStream {
  private readonly chunks: Buffer[] = []
  private readonly cap: number
  kept = 0
  dropped = 0

  constructor(cap: number) {
    this.cap = cap
  }

  /** The part of `chunk` that is still within the cap (possibly empty). */
  take(chunk: Buffer): Buffer {
    const room = Math.max(this.cap - this.kept, 0)
    const inside = room >= chunk.length ? chunk : chunk.subarray(0, room)
    if (inside.length > 0) {
      this.chunks.push(inside)
      this.kept += inside.length
    }
    this.dropped += chunk.length - inside.length
    return inside
  }

  repr() {
    return encodeStream(Buffer.concat(this.chunks, this.kept), this.dropped > 0)
  }
}

/** Why the command cannot start, in the words of the operation's `error` (null: it can). */
async function startProblem(ctx: RunnerContext, root: string, cwd: string, command: string, searchPath: string): Promise<string | null> {
  const state = await ctx.sandbox.fs.call('directoryState', { root, path: cwd })
  if (state === 'missing') return `working directory ${cwd}: no such file or directory`
  if (state === 'not-a-directory') return `working directory ${cwd}: not a directory`
  const executable = await ctx.sandbox.fs.call('findExecutable', { root, cwd, command, searchPath })
  return 'problem' in executable ? `cannot execute ${executable.problem}` : null
}

export async function runInstance(ctx: RunnerContext, op: Operation, spec: SpawnSpec, image: ImageRecord): Promise<void> {
  const fs = ctx.sandbox.fs
  const root = join(ctx.dataDir, 'instances', op.uuid)
  try {
    await sleep(ctx.stateDelayMs)
    if (op.cancelRequested) return cancelBeforeStart(ctx, op)
    op.status = 'ASSIGNED'
    await sleep(ctx.stateDelayMs)
    if (op.cancelRequested) return cancelBeforeStart(ctx, op)
    op.status = 'EXECUTING'
    appendInit(op)

    await fs.call('copyTree', { from: image.dir, to: root })
    await fs.call('placeFiles', {
      root,
      files: spec.files.map((placed) => ({ source: placed.file.path, path: placed.path, mode: placed.mode, uid: placed.uid, gid: placed.gid })),
    })
    const cwd = posix.normalize(spec.cwd)
    const command = spec.shell ? '/bin/sh' : spec.command
    const args = spec.shell ? ['-c', spec.command] : spec.args
    const env = { PATH: STANDARD_PATH, HOME: '/root', ...spec.env }
    // The service's init would fail to chdir or exec: no process, no result image.
    const problem = await startProblem(ctx, root, cwd, command, env.PATH)
    if (problem !== null || op.cancelRequested) {
      await fs.call('removeTree', { path: root })
      if (op.cancelRequested) return cancelBeforeStart(ctx, op)
      op.status = 'FAILED'
      op.error = problem
      return completeOperation(ctx, op)
    }
    const mountPoints = await fs.call('prepareMountPoints', { root, names: [...ctx.sandbox.mountPoints] })

    const startedMs = Date.now()
    const child = ctx.sandbox.launch({
      root,
      cwd,
      command,
      args,
      env,
      uid: spec.uid,
      gid: spec.gid,
      mountPoints: mountPoints.usable,
      withStdin: spec.stdin !== null,
    })
    const outcome = await superviseProcess(ctx, op, spec, child, { command, args, startedMs })
    await fs.call('removeMountPoints', { root, names: mountPoints.created })

    const cancelled = op.cancelRequested
    op.metadata.result = outcome.result
    if (cancelled || spec.disposable || outcome.startError) {
      await fs.call('removeTree', { path: root })
    } else {
      const { uuid, dir } = ctx.images.allocate()
      await fs.call('moveTree', { from: root, to: dir })
      ctx.images.register(uuid, dir, op.uuid)
      op.resultImageUuid = uuid
      op.imageSize = await fs.call('treeSize', { path: dir })
    }
    if (outcome.startError) {
      op.status = 'FAILED'
      op.error = outcome.startError
    } else {
      op.status = cancelled ? 'CANCELLED' : 'SUCCESS'
    }
    completeOperation(ctx, op)
  } catch (error) {
    await fs.call('removeTree', { path: root }).catch(() => undefined)
    if (op.log.finished) return
    op.status = op.cancelRequested ? 'CANCELLED' : 'FAILED'
    op.error = op.cancelRequested ? null : `emulator: ${(error as Error).message}`
    completeOperation(ctx, op)
  }
}

function cancelBeforeStart(ctx: RunnerContext, op: Operation): void {
  op.status = 'CANCELLED'
  completeOperation(ctx, op)
}

interface ProcessOutcome {
  result: Record<string, unknown>
  startError: string | null
}

function superviseProcess(
  ctx: RunnerContext,
  op: Operation,
  spec: SpawnSpec,
  child: ChildProcess,
  shown: { command: string; args: string[]; startedMs: number },
): Promise<ProcessOutcome> {
  return new Promise((resolve) => {
    const pid = child.pid
    let timedOut = false
    let startError: string | null = null
    const streams = { stdout: new CappedStream(spec.truncateAt), stderr: new CappedStream(spec.truncateAt) }

    if (pid) {
      op.pid = pid
      ctx.liveGroups.add(pid)
      op.log.append(1, 'spawn', {
        pid,
        command: shown.command,
        args: shown.args,
        shell: spec.shell,
        cwd: spec.cwd,
        uid: spec.uid,
        gid: spec.gid,
        timeout: spec.timeout,
        truncate_at: spec.truncateAt,
        env: redactEnv(spec.env),
      })
    }
    op.cancel = () => killGroup(pid)
    // A cancel that came while the sandbox was being prepared (after the last check, before there
    // was a process to kill) is honoured now: the service would not let the command run on.
    if (op.cancelRequested) killGroup(pid)
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(pid)
    }, spec.timeout * 1000)

    // Past the cap nothing more is streamed; the pipe is still drained so the command never blocks.
    const onOutput = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const inside = streams[stream].take(chunk)
      for (let offset = 0; offset < inside.length; offset += MAX_EVENT_BYTES) {
        op.log.appendOutput(1, stream, inside.subarray(offset, offset + MAX_EVENT_BYTES))
      }
    }
    child.stdout?.on('data', onOutput('stdout'))
    child.stderr?.on('data', onOutput('stderr'))
    if (child.stdin && spec.stdin) {
      child.stdin.on('error', () => undefined)
      child.stdin.end(spec.stdin)
    }

    let exitCode: number | null = null
    let exitSignal: NodeJS.Signals | null = null
    child.on('error', (error) => {
      startError = `emulator: cannot start the sandbox: ${error.message}`
    })
    // The instance ends with its main process: anything it left running in the group goes too,
    // which also lets the output pipes close.
    child.on('exit', (code, signal) => {
      exitCode = code
      exitSignal = signal
      killGroup(pid)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (pid) ctx.liveGroups.delete(pid)
      op.cancel = null
      exitCode ??= code
      exitSignal ??= signal
      const signalNumber = exitSignal ? (osConstants.signals[exitSignal] ?? -1) : -1
      const codeValue = exitSignal ? -1 : (exitCode ?? -1)
      const durationMs = Date.now() - shown.startedMs
      if (pid) {
        for (const stream of ['stdout', 'stderr'] as const) {
          const capped = streams[stream]
          if (capped.dropped > 0) op.log.append(1, 'truncated', { stream, bytes_emitted: capped.kept, bytes_dropped: capped.dropped })
        }
        op.log.append(1, 'exit', {
          pid,
          code: codeValue,
          signal: signalNumber,
          core_dump: false,
          timed_out: timedOut,
          duration_ms: durationMs,
          resources: ZERO_RESOURCES,
        })
      }
      resolve({
        startError,
        result: {
          resources: { elapsed_time: durationMs / 1000 },
          state: {
            exit_code: codeValue,
            pid: pid ?? -1,
            signal: signalNumber,
            timed_out: timedOut,
            continued: false,
            core_dump: false,
            stopped: false,
          },
          stdout: streams.stdout.repr(),
          stderr: streams.stderr.repr(),
        },
      })
    })
  })
}

/** The `init` event (spid 0) that opens every operation's log once it is EXECUTING. */
export function appendInit(op: Operation): void {
  op.log.append(0, 'init', {
    started_at: new Date().toISOString(),
    runtime_path: '/run/contreeinitd',
    verbose: false,
    init_pid: 1,
    hostname: hostname(),
    kernel: 'emulator',
    machine: process.arch,
  })
}
