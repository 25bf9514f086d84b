/**
 * Follows one exec's output (`GET /api/v1/stream/execs/{id}/io`, SSE) to the frame that carries its
 * exit code. Frames are numbered; after any drop the stream is reopened with `lastSequence` set to the
 * last frame written, and a frame at or below it is never written again, so the output arrives
 * byte-exact and without duplicates however often the connection breaks.
 *
 * When a connection ends without the exit frame, the exec itself is read: still running → resume;
 * exited → resume once more to drain its last frames; gone, or the agent unreachable for several
 * rounds in a row → the exec is lost (the caller asks the sandbox why).
 */
import { CorruptBodyError, HttpError, RequestTimeoutError, TransportError, TruncatedBodyError } from '../../http/errors.ts'
import { DEFAULT_DELAYS_MS, isTransientStatus, ladderDelay } from '../../http/retry.ts'
import { parseSse } from '../../sse/parser.ts'
import type { OutputSink } from '../types.ts'
import type { AgentClient } from './agent.ts'
import { WaitBudget, type WaitOptions } from './wait-budget.ts'
import type { ExecOutputFrame } from './wire.ts'

export interface ExecStreamOptions extends WaitOptions {
  log?: (message: string) => void
  delaysMs?: readonly number[]
  /** Rounds in a row that end without any new frame and without a readable exec, before giving up. */
  lostAfterRounds?: number
}

export interface ExecStreamEnd {
  exitCode: number
  /** The exit code was read from the exec because its last frames could not be streamed. */
  fromRecord: boolean
  lastSequence: number | undefined
}

/** The exec vanished (deleted, or its agent gone) before reporting an exit code. */
export class ExecLostError extends Error {
  readonly lastSequence: number | undefined
  constructor(message: string, lastSequence: number | undefined, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ExecLostError'
    this.lastSequence = lastSequence
  }
}

/** A frame whose data is not the agent's JSON: the stream is broken, not the exec. */
class MalformedFrameError extends Error {
  constructor(detail: string) {
    super(`malformed exec output frame: ${detail}`)
    this.name = 'MalformedFrameError'
  }
}

const DEFAULT_LOST_AFTER_ROUNDS = 8
const NO_PROGRESS_PAUSE_MS = 500
/** Resumes after the exec is known to have exited, to fetch its last frames, before its record is used. */
const DRAIN_ROUNDS = 3

export async function followExecOutput(
  agent: Pick<AgentClient, 'openExecOutput' | 'getExec'>,
  execId: string,
  sink: OutputSink,
  opts: ExecStreamOptions & { lastSequence?: number } = {},
): Promise<ExecStreamEnd> {
  const wait = new WaitBudget(opts, `exec ${execId}`)
  const log = opts.log ?? (() => undefined)
  const delays = opts.delaysMs ?? DEFAULT_DELAYS_MS
  const lostAfter = opts.lostAfterRounds ?? DEFAULT_LOST_AFTER_ROUNDS
  let lastSequence = opts.lastSequence
  let idleRounds = 0
  let drainRounds = 0

  for (;;) {
    wait.check()
    const before = lastSequence
    let reason = 'end of stream'
    let retryAfterMs: number | undefined
    try {
      const res = await agent.openExecOutput(execId, lastSequence, wait.signal())
      for await (const message of parseSse(res.body)) {
        if (message.kind !== 'event') continue
        const frame = parseFrame(message.data)
        if (lastSequence !== undefined && frame.sequence <= lastSequence) continue
        if (frame.output !== '') {
          sink.write(frame.type === 'stderr' ? 'stderr' : 'stdout', Buffer.from(frame.output, 'utf8'))
          // Read no further than the log can take: memory stays flat however fast the exec writes.
          const full = sink.ready?.()
          if (full) await full
        }
        lastSequence = frame.sequence
        // A negative code means "not exited yet" (the CLI reads it so); only a real code ends the exec.
        if (typeof frame.exitCode === 'number' && frame.exitCode >= 0) return { exitCode: frame.exitCode, fromRecord: false, lastSequence }
      }
    } catch (caught) {
      const error = wait.translate(caught)
      if (error !== caught) throw error
      if (error instanceof HttpError && error.status === 404) {
        reason = 'HTTP 404'
      } else if (error instanceof HttpError && isTransientStatus(error.status)) {
        reason = `HTTP ${error.status}`
        retryAfterMs = error.retryAfterMs
      } else if (error instanceof HttpError) {
        throw new ExecLostError(`the output of exec ${execId} cannot be read: ${error.message}`, lastSequence, { cause: error })
      } else if (!isStreamBreak(error)) {
        throw error
      } else {
        reason = (error as Error).message
      }
    }

    const progressed = lastSequence !== before
    if (progressed) idleRounds = 0
    log(`output of exec ${execId} ended without an exit code (${reason}); last sequence ${lastSequence ?? 'none'}`)

    const exec = await readExec(agent, execId, wait, lastSequence, log)
    if (exec === 'gone') throw new ExecLostError(`exec ${execId} no longer exists on the agent (it was deleted or its sandbox went away)`, lastSequence)
    if (exec === 'unreadable') {
      if (!progressed && ++idleRounds >= lostAfter) {
        throw new ExecLostError(`lost exec ${execId}: its output and its record could not be read (${reason}; ${idleRounds} attempts in a row)`, lastSequence)
      }
    } else if (exec.exitCode >= 0) {
      // It exited: its last frames are in the agent's buffer; a few resumes fetch them.
      if (++drainRounds > DRAIN_ROUNDS && !progressed) {
        log(`exec ${execId} exited with ${exec.exitCode}, but its last output frames could not be streamed`)
        return { exitCode: exec.exitCode, fromRecord: true, lastSequence }
      }
    } else {
      // Still running: a connection closed by a proxy or an idle timeout is no reason to stop following.
      idleRounds = 0
    }
    const delay = retryAfterMs ?? (progressed ? 0 : Math.max(NO_PROGRESS_PAUSE_MS, ladderDelay(delays, idleRounds)))
    if (delay > 0) await wait.pause(delay)
  }
}

/** The exec's record; 'gone' when the agent says it does not exist; 'unreadable' on a transient failure. */
async function readExec(
  agent: Pick<AgentClient, 'getExec'>,
  execId: string,
  wait: WaitBudget,
  lastSequence: number | undefined,
  log: (message: string) => void,
): Promise<{ exitCode: number } | 'gone' | 'unreadable'> {
  try {
    const exec = await agent.getExec(execId, wait.signal())
    return exec === null ? 'gone' : { exitCode: typeof exec.exitCode === 'number' ? exec.exitCode : -1 }
  } catch (caught) {
    const error = wait.translate(caught)
    if (error !== caught) throw error
    if (error instanceof HttpError && !isTransientStatus(error.status)) {
      throw new ExecLostError(`exec ${execId} cannot be read: ${error.message}`, lastSequence, { cause: error })
    }
    if (!(error instanceof HttpError) && !isStreamBreak(error)) throw error
    // A sandbox whose VM is going away answers with gateway errors for a while.
    log(`reading exec ${execId} failed: ${(error as Error).message}`)
    return 'unreadable'
  }
}

function parseFrame(data: string): ExecOutputFrame {
  let parsed: unknown
  try {
    parsed = JSON.parse(data)
  } catch {
    throw new MalformedFrameError('not JSON')
  }
  if (typeof parsed !== 'object' || parsed === null) throw new MalformedFrameError('not an object')
  const frame = parsed as Partial<ExecOutputFrame>
  if (typeof frame.sequence !== 'number' || !Number.isInteger(frame.sequence)) throw new MalformedFrameError('no sequence number')
  return { type: frame.type === 'stderr' ? 'stderr' : 'stdout', output: typeof frame.output === 'string' ? frame.output : '', sequence: frame.sequence, ...(typeof frame.exitCode === 'number' ? { exitCode: frame.exitCode } : {}) }
}

function isStreamBreak(error: unknown): boolean {
  return (
    error instanceof TransportError ||
    error instanceof TruncatedBodyError ||
    error instanceof CorruptBodyError ||
    error instanceof RequestTimeoutError ||
    error instanceof MalformedFrameError
  )
}
