// The life of one instance operation: PENDING → ASSIGNED → EXECUTING, copy the image tree, inject
// files, run the command, stream its output into the event log, and turn the root into the result image.
import { execFile, type ChildProcess } from 'node:child_process'
import { chmod, chown, copyFile, mkdir, rename, rm } from 'node:fs/promises'
import { constants as osConstants, hostname } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { promisify } from 'node:util'
import type { FileRecord } from './file-store.ts'
import { copyTree, type ImageRecord, type ImageStore } from './image-store.ts'
import type { Operation } from './operations.ts'
import { killGroup, launch, planMounts, undoMounts, type MountPlan, type SandboxInfo } from './sandbox.ts'
import { encodeStream } from './stream-repr.ts'

const run = promisify(execFile)

/** Raw bytes per stdout/stderr event, like the real init's read buffer. */
export const MAX_EVENT_BYTES = 64 * 1024
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const SECRET_SUFFIXES = ['token', 'secret', 'password', 'api_key', 'credentials', 'authorization']

export interface SpawnFile {
  file: FileRecord
  path: string
  mode: number | null
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
  sandbox: SandboxInfo
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

export async function imageSizeBytes(dir: string): Promise<number> {
  try {
    const { stdout } = await run('du', ['-sb', dir])
    return Number.parseInt(stdout, 10) || 0
  } catch {
    return 0
  }
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

/** Captures a stream up to the cap for the operation record; the event log always gets every byte. */
class Capture {
  private readonly chunks: Buffer[] = []
  private kept = 0
  private readonly cap: number
  dropped = 0
  constructor(cap: number) {
    this.cap = cap
  }

  /** Returns true the first time the cap is crossed. */
  add(chunk: Buffer): boolean {
    const room = this.cap - this.kept
    const wasTruncated = this.dropped > 0
    if (room >= chunk.length) {
      this.chunks.push(chunk)
      this.kept += chunk.length
      return false
    }
    if (room > 0) {
      this.chunks.push(chunk.subarray(0, room))
      this.kept += room
    }
    this.dropped += chunk.length - Math.max(room, 0)
    return !wasTruncated
  }

  repr() {
    return encodeStream(Buffer.concat(this.chunks, this.kept), this.dropped > 0)
  }

  get keptBytes(): number {
    return this.kept
  }
}

async function writeInjectedFiles(root: string, files: SpawnFile[]): Promise<void> {
  for (const spec of files) {
    const target = join(root, posix.normalize(spec.path))
    await mkdir(dirname(target), { recursive: true })
    await rm(target, { force: true })
    await copyFile(spec.file.path, target)
    await chmod(target, spec.mode ?? 0o644)
    if (process.getuid?.() === 0) await chown(target, spec.uid, spec.gid)
  }
}

export async function runInstance(ctx: RunnerContext, op: Operation, spec: SpawnSpec, image: ImageRecord): Promise<void> {
  const root = join(ctx.dataDir, 'instances', op.uuid)
  let plan: MountPlan | null = null
  try {
    await sleep(ctx.stateDelayMs)
    if (op.cancelRequested) return cancelBeforeStart(ctx, op)
    op.status = 'ASSIGNED'
    await sleep(ctx.stateDelayMs)
    if (op.cancelRequested) return cancelBeforeStart(ctx, op)
    op.status = 'EXECUTING'
    appendInit(op)

    await copyTree(image.dir, root)
    await writeInjectedFiles(root, spec.files)
    await mkdir(join(root, posix.normalize(spec.cwd)), { recursive: true })
    if (ctx.sandbox.sandboxed) plan = await planMounts(root)
    if (op.cancelRequested) {
      await rm(root, { recursive: true, force: true })
      return cancelBeforeStart(ctx, op)
    }

    const command = spec.shell ? '/bin/sh' : spec.command
    const args = spec.shell ? ['-c', spec.command] : spec.args
    const env = { PATH: DEFAULT_PATH, HOME: '/root', ...spec.env }
    const startedMs = Date.now()
    const child = launch(ctx.sandbox, plan, {
      root,
      cwd: posix.normalize(spec.cwd),
      command,
      args,
      env,
      uid: spec.uid,
      gid: spec.gid,
      withStdin: spec.stdin !== null,
    })
    const outcome = await superviseProcess(ctx, op, spec, child, { command, args, env, startedMs })

    if (plan) await undoMounts(plan)
    const cancelled = op.cancelRequested
    op.metadata.result = outcome.result
    if (cancelled || spec.disposable) {
      await rm(root, { recursive: true, force: true })
    } else {
      const { uuid, dir } = ctx.images.allocate()
      await mkdir(dirname(dir), { recursive: true })
      await rename(root, dir)
      ctx.images.register(uuid, dir, op.uuid)
      op.resultImageUuid = uuid
      op.imageSize = await imageSizeBytes(dir)
    }
    if (outcome.startError) {
      op.status = 'FAILED'
      op.error = outcome.startError
    } else {
      op.status = cancelled ? 'CANCELLED' : 'SUCCESS'
    }
    completeOperation(ctx, op)
  } catch (error) {
    await rm(root, { recursive: true, force: true }).catch(() => undefined)
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
  shown: { command: string; args: string[]; env: Record<string, string>; startedMs: number },
): Promise<ProcessOutcome> {
  return new Promise((resolve) => {
    const pid = child.pid
    let timedOut = false
    let startError: string | null = null
    const captures = { stdout: new Capture(spec.truncateAt), stderr: new Capture(spec.truncateAt) }

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
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(pid)
    }, spec.timeout * 1000)

    const onOutput = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      for (let offset = 0; offset < chunk.length; offset += MAX_EVENT_BYTES) {
        const piece = chunk.subarray(offset, offset + MAX_EVENT_BYTES)
        op.log.appendOutput(1, stream, piece)
        if (captures[stream].add(piece)) {
          op.log.append(1, 'truncated', {
            stream,
            bytes_emitted: captures[stream].keptBytes,
            bytes_dropped: captures[stream].dropped,
          })
        }
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
      startError = `failed to start ${shown.command}: ${error.message}`
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
          stdout: captures.stdout.repr(),
          stderr: captures.stderr.repr(),
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
