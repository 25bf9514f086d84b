/**
 * Follows a remote build's log stream (`GET {builder}/builds/{id}/logs`, SSE) to its end: every plain
 * line into the sink exactly once, `{"done":true}` or `{"error":…}` as the result.
 *
 * The builder keeps no cursor: every connection replays the log from its first line (the SDKs
 * reconnect without one, and the emulator serves it so). Each line printed is remembered as a short
 * hash; a new connection's lines are matched against them in order and skipped while they match, so
 * nothing is printed twice. Should a connection start elsewhere (a builder that tails instead of
 * replaying), the first line that differs is printed and everything after it, so nothing is lost
 * either.
 *
 * Reconnects: a clean end without a control frame and a dropped connection reconnect for as long as
 * the deadline allows (a long build outlives any one connection); 404 means the build's pod is not
 * there yet, within a time budget; transient statuses within a count budget; anything else is fatal.
 */
import { CorruptBodyError, HttpError, RequestTimeoutError, TransportError, TruncatedBodyError } from '../../http/errors.ts'
import { DEFAULT_DELAYS_MS, isTransientStatus, ladderDelay } from '../../http/retry.ts'
import { parseSse } from '../../sse/parser.ts'
import type { OutputSink } from '../types.ts'
import type { TogetherBuilder } from './builder.ts'
import { WaitBudget, type WaitOptions } from './wait-budget.ts'
import type { BuildLogControl } from './wire.ts'

export type BuildLogEnd = { kind: 'done' } | { kind: 'error'; message: string }

export interface BuildLogOptions extends WaitOptions {
  log?: (message: string) => void
  delaysMs?: readonly number[]
  /** How long the stream may keep answering 404 (the build's pod not scheduled yet). */
  notThereYetMs?: number
  /** Transient statuses (5xx, 429…) in a row before the stream counts as broken for good. */
  transientAttempts?: number
}

/** The log stream failed in a way reconnecting will not fix; the build itself may still run. */
export class BuildLogError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'BuildLogError'
  }
}

const DEFAULT_NOT_THERE_YET_MS = 120_000
const DEFAULT_TRANSIENT_ATTEMPTS = 10
/** Keeps a stream that ends without news from turning into a tight reconnect loop (the SDKs wait 1 s). */
const NO_PROGRESS_PAUSE_MS = 1000

export async function followBuildLog(
  builder: Pick<TogetherBuilder, 'openLogs'>,
  buildId: string,
  sink: OutputSink,
  opts: BuildLogOptions = {},
): Promise<BuildLogEnd> {
  const wait = new WaitBudget(opts, `build ${buildId}`)
  const log = opts.log ?? (() => undefined)
  const delays = opts.delaysMs ?? DEFAULT_DELAYS_MS
  const notThereYetMs = opts.notThereYetMs ?? DEFAULT_NOT_THERE_YET_MS
  const transientAttempts = opts.transientAttempts ?? DEFAULT_TRANSIENT_ATTEMPTS
  const now = opts.now ?? (() => performance.now())
  /** One short hash per line printed, in order: what a replay is matched against. */
  const printed: number[] = []
  let notFoundSince: number | undefined
  let transientFailures = 0
  let notFoundRetries = 0

  for (let connection = 1; ; connection++) {
    wait.check()
    const before = printed.length
    let position = 0
    let replaying = true
    let reason = 'end of stream'
    let delay = 0
    try {
      const res = await builder.openLogs(buildId, wait.signal())
      notFoundSince = undefined
      notFoundRetries = 0
      transientFailures = 0
      for await (const message of parseSse(res.body)) {
        if (message.kind !== 'event') continue
        const control = readControl(message.data)
        if (control?.done === true) return { kind: 'done' }
        if (control !== undefined && 'error' in control) return { kind: 'error', message: errorText(control.error) }
        if (control !== undefined) continue
        const line = message.data
        const lineHash = hashLine(line)
        if (replaying && position < printed.length) {
          if (printed[position] === lineHash) {
            position++
            continue
          }
          log(`log of build ${buildId}: connection ${connection} does not replay line ${position + 1}; printing from there`)
          replaying = false
        }
        printed.push(lineHash)
        position++
        sink.write('stdout', Buffer.from(`${line}\n`, 'utf8'))
        // Read no further than the log can take: memory stays flat however fast the builder sends.
        const full = sink.ready?.()
        if (full) await full
      }
    } catch (caught) {
      const error = wait.translate(caught)
      if (error !== caught) throw error
      if (error instanceof HttpError && error.status === 404) {
        notFoundSince ??= now()
        if (now() - notFoundSince > notThereYetMs) {
          throw new BuildLogError(`the log stream of build ${buildId} answered 404 for ${Math.round(notThereYetMs / 1000)} s: the build never appeared`, { cause: error })
        }
        reason = 'HTTP 404 (not there yet)'
        delay = ladderDelay(delays, notFoundRetries++)
      } else if (error instanceof HttpError && isTransientStatus(error.status)) {
        if (++transientFailures >= transientAttempts) {
          throw new BuildLogError(`the log stream of build ${buildId} kept failing (${error.message})`, { cause: error })
        }
        reason = `HTTP ${error.status}`
        delay = error.retryAfterMs ?? ladderDelay(delays, transientFailures - 1)
      } else if (error instanceof HttpError) {
        throw new BuildLogError(`the log stream of build ${buildId} cannot be read: ${error.message}`, { cause: error })
      } else if (isStreamBreak(error)) {
        reason = (error as Error).message
      } else {
        throw error
      }
    }
    const progressed = printed.length > before
    log(`log of build ${buildId} ended without done or error (${reason}); ${printed.length} line(s) so far; reconnecting`)
    if (!progressed) delay = Math.max(delay, NO_PROGRESS_PAUSE_MS)
    if (delay > 0) await wait.pause(delay)
  }
}

/**
 * A control frame as both SDKs detect it: JSON that mentions "done" or "error". JSON that does not
 * parse is an ordinary line (as the TypeScript SDK prints it).
 */
function readControl(data: string): BuildLogControl | undefined {
  if (!data.startsWith('{') || !(data.includes('"done"') || data.includes('"error"'))) return undefined
  try {
    const parsed: unknown = JSON.parse(data)
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as BuildLogControl) : undefined
  } catch {
    return undefined
  }
}

function errorText(error: unknown): string {
  if (typeof error === 'string' && error !== '') return error
  if (error === null || error === undefined || error === '') return 'no reason given'
  return JSON.stringify(error)
}

function isStreamBreak(error: unknown): boolean {
  return (
    error instanceof TransportError ||
    error instanceof TruncatedBodyError ||
    error instanceof CorruptBodyError ||
    error instanceof RequestTimeoutError
  )
}

/** FNV-1a over the UTF-16 units, combined with the length: 53 bits, one number per line. */
function hashLine(line: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < line.length; i++) {
    hash ^= line.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash * 0x200000 + (line.length % 0x200000)
}
