/**
 * The ConTree event follower (design.md "Streaming", protocol §6.3/§6.4). Yields every event of
 * an operation exactly once, in id order, resuming with Last-Event-Id after any kind of drop, and
 * never gives up while the operation is still running: only a completion, a terminal operation
 * whose retained log has been drained, a fatal status, the caller's abort or its deadline end it.
 */
import { CorruptBodyError, HttpError, RequestTimeoutError, TransportError, TruncatedBodyError } from '../../http/errors.ts'
import { DEFAULT_DELAYS_MS, isTransientStatus, ladderDelay } from '../../http/retry.ts'
import { realSleep, type Sleep } from '../../http/sleep.ts'
import { parseSseBytes, sseText } from '../../sse/parser.ts'
import { isTerminal } from '../types.ts'
import type { ContreeApi } from './api.ts'
import { parseEventJson } from './event-json.ts'
import type { OperationEvent, OperationResponse } from './wire.ts'

export type FollowApi = Pick<ContreeApi, 'openEvents' | 'getOperation'>

export interface FollowOptions {
  signal?: AbortSignal
  /** Absolute time on the `now` clock (monotonic ms) after which following fails. */
  deadline?: number
  now?: () => number
  sleep?: Sleep
  log?: (message: string) => void
  /** Resume after this id (events up to it were already seen). */
  lastEventId?: number
  /** Reconnect/poll ladder; defaults to the shared retry ladder. */
  delaysMs?: readonly number[]
  /** Attempts at reading the retained log once the operation is known to be terminal. */
  drainAttempts?: number
}

export class FollowTimeoutError extends Error {
  readonly operationId: string
  constructor(operationId: string) {
    super(`timed out waiting for operation ${operationId}`)
    this.name = 'FollowTimeoutError'
    this.operationId = operationId
  }
}

/** An event whose `data` is not the JSON event object: the stream is broken, not the operation. */
class MalformedEventError extends Error {
  constructor(detail: string) {
    super(`malformed event in stream: ${detail}`)
    this.name = 'MalformedEventError'
  }
}

/** Keeps a stream that ends without progress from turning into a tight reconnect loop. */
export const NO_PROGRESS_FLOOR_MS = 500
const DRAIN_RETRY_MS = 500
const DEFAULT_DRAIN_ATTEMPTS = 3
/** The events route does not exist for this server or operation: fall back to polling. */
const ROUTE_UNAVAILABLE = new Set([400, 404, 405, 406])

type CycleEnd = { kind: 'eof' } | { kind: 'broken'; reason: string } | { kind: 'retry-status'; status: number; retryAfterMs: number | undefined }

export async function* followOperation(api: FollowApi, id: string, opts: FollowOptions = {}): AsyncGenerator<OperationEvent> {
  const now = opts.now ?? (() => performance.now())
  const sleep = opts.sleep ?? realSleep
  const log = opts.log ?? (() => undefined)
  const delays = opts.delaysMs ?? DEFAULT_DELAYS_MS
  const drainAttempts = Math.max(1, opts.drainAttempts ?? DEFAULT_DRAIN_ATTEMPTS)

  const remaining = (): number => (opts.deadline === undefined ? Number.POSITIVE_INFINITY : opts.deadline - now())
  const checkDeadline = (): void => {
    if (remaining() <= 0) throw new FollowTimeoutError(id)
  }
  // One signal for every await: the caller's abort, or the deadline (so a silent socket cannot outlive it).
  let deadlineSignal: AbortSignal | undefined
  const signalFor = (): AbortSignal | undefined => {
    const left = remaining()
    const signals: AbortSignal[] = []
    if (opts.signal) signals.push(opts.signal)
    if (Number.isFinite(left)) {
      deadlineSignal = AbortSignal.timeout(Math.max(1, Math.ceil(left)))
      signals.push(deadlineSignal)
    }
    return signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals)
  }
  /** Rethrows the caller's abort as is and a deadline abort as FollowTimeoutError. */
  const translate = (error: unknown): unknown => {
    if (opts.signal?.aborted) return opts.signal.reason
    // The timer may fire a fraction of a millisecond before the clock agrees; it is the deadline either way.
    if (remaining() <= 0 || deadlineSignal?.aborted === true) return new FollowTimeoutError(id)
    return error
  }
  const pause = async (ms: number): Promise<void> => {
    checkDeadline()
    const capped = Math.min(ms, remaining())
    try {
      await sleep(capped, signalFor())
    } catch (error) {
      throw translate(error)
    }
    checkDeadline()
  }
  /** Transient failures mean "not known to be terminal"; anything else is fatal. */
  const probeTerminal = async (): Promise<boolean> => {
    try {
      const op = await api.getOperation(id, signalFor())
      return isTerminal(op.status ?? '')
    } catch (error) {
      const translated = translate(error)
      if (translated !== error) throw translated
      if (isTransientFailure(error)) {
        log(`status probe of ${id} failed transiently: ${(error as Error).message}`)
        return false
      }
      throw error
    }
  }

  let lastId = opts.lastEventId
  let mode: 'follow' | 'drain' = 'follow'
  let drainFailures = 0
  let statusRetries = 0

  for (;;) {
    checkDeadline()
    const before = lastId
    let end: CycleEnd = { kind: 'eof' }
    try {
      const res = await api.openEvents(id, { follow: mode === 'follow', ...(lastId === undefined ? {} : { lastEventId: lastId }), ...optSignal(signalFor()) })
      for await (const message of parseSseBytes(res.body)) {
        checkDeadline()
        if (message.kind === 'comment') continue
        if (message.kind === 'id') {
          const frameId = parseEventId(message.id)
          if (frameId !== undefined && (lastId === undefined || frameId > lastId)) lastId = frameId
          continue
        }
        if (message.event === 'sse_error') {
          end = { kind: 'broken', reason: `sse_error: ${sseText(message.data)}` }
          break
        }
        const event = toOperationEvent(message.id, message.event, message.data)
        if (event.id >= 0) {
          if (lastId !== undefined && event.id <= lastId) continue
          lastId = event.id
        }
        yield event
        if (event.type === 'completion') return
      }
    } catch (caught) {
      const error = translate(caught)
      if (error !== caught) throw error
      if (error instanceof HttpError) {
        if (ROUTE_UNAVAILABLE.has(error.status) && mode === 'follow') {
          log(`events route unavailable for ${id} (HTTP ${error.status}); polling the operation instead`)
          yield* pollUntilTerminal()
          return
        }
        if (isTransientStatus(error.status) || (mode === 'drain' && error.status === 404)) {
          end = { kind: 'retry-status', status: error.status, retryAfterMs: error.retryAfterMs }
        } else {
          throw error
        }
      } else if (isStreamBreak(error)) {
        end = { kind: 'broken', reason: (error as Error).message }
      } else {
        throw error
      }
    }

    const progressed = lastId !== before
    if (progressed) statusRetries = 0
    log(`event stream of ${id} (${mode}) ended without completion: ${describe(end)}; last event id ${lastId ?? 'none'}`)

    if (mode === 'drain') {
      // The operation is terminal, so a clean end of its retained log is all there is.
      if (end.kind === 'eof') return
      // The budget is for failures in a row: a drain that keeps making progress is never cut short.
      if (progressed) drainFailures = 0
      drainFailures++
      if (drainFailures >= drainAttempts) {
        log(`giving up on the retained log of ${id} after ${drainFailures} attempts`)
        return
      }
      await pause(end.kind === 'retry-status' && end.retryAfterMs !== undefined ? end.retryAfterMs : DRAIN_RETRY_MS)
      continue
    }

    if (await probeTerminal()) {
      // Read what was logged after the break from the retained log, without follow.
      mode = 'drain'
      continue
    }
    let delay = end.kind === 'retry-status' ? (end.retryAfterMs ?? ladderDelay(delays, statusRetries++)) : 0
    if (!progressed) delay = Math.max(delay, NO_PROGRESS_FLOOR_MS)
    if (delay > 0) await pause(delay)
  }

  async function* pollUntilTerminal(): AsyncGenerator<OperationEvent> {
    for (let attempt = 0; ; attempt++) {
      checkDeadline()
      let op: OperationResponse | undefined
      try {
        op = await api.getOperation(id, signalFor())
      } catch (caught) {
        const error = translate(caught)
        if (error !== caught || !isTransientFailure(error)) throw error
        log(`polling ${id} failed transiently: ${(error as Error).message}`)
      }
      if (op !== undefined && isTerminal(op.status ?? '')) {
        yield synthesizeCompletion(op, lastId)
        return
      }
      await pause(ladderDelay(delays, attempt))
    }
  }
}

function optSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {}
}

function describe(end: CycleEnd): string {
  if (end.kind === 'eof') return 'end of stream'
  if (end.kind === 'broken') return end.reason
  return `HTTP ${end.status}`
}

function isTransientFailure(error: unknown): boolean {
  if (error instanceof HttpError) return isTransientStatus(error.status)
  return error instanceof TransportError || error instanceof RequestTimeoutError || error instanceof TruncatedBodyError
}

function isStreamBreak(error: unknown): boolean {
  return (
    error instanceof TransportError ||
    error instanceof TruncatedBodyError ||
    error instanceof CorruptBodyError ||
    error instanceof RequestTimeoutError ||
    error instanceof MalformedEventError
  )
}

function parseEventId(text: string | undefined): number | undefined {
  if (text === undefined || !/^\s*\d+\s*$/.test(text)) return undefined
  return Number(text)
}

/** Builds the typed event from one SSE frame; the frame's JSON `data` is the whole event object. */
function toOperationEvent(frameId: string | undefined, frameEvent: string, data: Buffer): OperationEvent {
  let payload: unknown
  try {
    payload = parseEventJson(data)
  } catch {
    throw new MalformedEventError(`${frameEvent} frame with non-JSON data`)
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new MalformedEventError(`${frameEvent} frame data is not an object`)
  const record = payload as Record<string, unknown>
  const id = Number.isInteger(record.id) ? (record.id as number) : (parseEventId(frameId) ?? -1)
  const type = typeof record.type === 'string' ? record.type : frameEvent
  const eventData = typeof record.data === 'object' && record.data !== null ? (record.data as Record<string, unknown>) : {}
  const event: OperationEvent = { id, type, data: type === 'completion' ? normalizeCompletion(eventData) : eventData }
  if (typeof record.ts === 'string') event.ts = record.ts
  if (typeof record.spid === 'number') event.spid = record.spid
  return event
}

/** Older servers name the fields `duration` (seconds) and `result_image`; expose the spec names too. */
function normalizeCompletion(data: Record<string, unknown>): Record<string, unknown> {
  const out = { ...data }
  if (typeof out.duration_ms !== 'number' && typeof out.duration === 'number') out.duration_ms = Math.round(out.duration * 1000)
  if (out.result_image_uuid === undefined && out.result_image !== undefined) out.result_image_uuid = out.result_image
  return out
}

/** The completion the events route would have sent, made from the operation record. */
function synthesizeCompletion(op: OperationResponse, lastId: number | undefined): OperationEvent {
  return {
    id: lastId === undefined ? 0 : lastId + 1,
    ts: new Date().toISOString(),
    spid: 0,
    type: 'completion',
    synthetic: true,
    data: {
      status: op.status,
      duration_ms: typeof op.duration === 'number' ? Math.round(op.duration * 1000) : 0,
      result_image_uuid: op.result_image_uuid ?? op.result?.image ?? null,
      error: op.error ?? null,
      ...(typeof op.image_size === 'number' ? { image_size_bytes: op.image_size } : {}),
    },
  }
}
