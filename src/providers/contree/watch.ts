/**
 * Watches one ConTree operation to its end: streams the main process's output into the sink as it
 * arrives and turns the exit/completion events into the action's OperationOutcome. The operation
 * record is fetched only when the stream could not tell the whole story, so a normal run costs no
 * request beyond the event stream.
 */
import type { Sleep } from '../../http/sleep.ts'
import type { OperationOutcome, OperationStatus, OutputSink } from '../types.ts'
import { followOperation, type FollowApi } from './follow.ts'
import { StreamDecoder, type CompletionEventData, type ExitEventData, type OperationResponse, type StreamRepr, type TruncatedEventData } from './wire.ts'

export interface WatchOptions {
  signal?: AbortSignal
  sleep?: Sleep
  /** Monotonic ms on the `now` clock. */
  deadline?: number
  now?: () => number
  log?: (message: string) => void
  /** An import has no main process; all its output is progress worth showing. */
  kind?: 'instance' | 'image_import'
}

const MAIN_SPID = 1
/**
 * Output taken from the operation record is written this much at a time, waiting for the log in
 * between as the stream path does: a record can hold megabytes, and whatever is still queued for a
 * slow log reader when the process ends is lost.
 */
const RECORD_SLICE_BYTES = 64 * 1024

export async function watchOperation(api: FollowApi, id: string, sink: OutputSink, opts: WatchOptions = {}): Promise<OperationOutcome> {
  let streamed = false
  /** Bytes of each stream written to the sink, to tell what a record must still fill in. */
  const written = { stdout: 0, stderr: 0 }
  const notices: string[] = []
  let exit: ExitEventData | undefined
  let completion: CompletionEventData | undefined
  let synthetic = false
  // Subprocesses exec'd next to the main one announce themselves with a spawn event; output of a
  // spid that never spawned (import progress) still belongs to the operation itself.
  const spawnedOthers = new Set<number>()

  const follow = followOperation(api, id, {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.sleep ? { sleep: opts.sleep } : {}),
    ...(opts.deadline !== undefined ? { deadline: opts.deadline } : {}),
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  })
  const decoder = new StreamDecoder()
  for await (const event of follow) {
    const spid = event.spid ?? MAIN_SPID
    switch (event.type) {
      case 'stdout':
      case 'stderr': {
        if (spid !== MAIN_SPID && opts.kind !== 'image_import' && spawnedOthers.has(spid)) break
        streamed = true
        const bytes = decoder.decode(event.data as unknown as StreamRepr)
        if (bytes.byteLength > 0) {
          const stream = event.type === 'stdout' ? 'stdout' : 'stderr'
          written[stream] += bytes.byteLength
          sink.write(stream, bytes)
          // Read no further than the log can take: memory stays flat however fast the service sends.
          const full = sink.ready?.()
          if (full) await unlessAborted(full, opts.signal)
        }
        break
      }
      case 'spawn':
        if (spid !== MAIN_SPID) spawnedOthers.add(spid)
        break
      case 'exit':
        if (spid === MAIN_SPID) exit = event.data as ExitEventData
        break
      case 'truncated': {
        if (spid !== MAIN_SPID && opts.kind !== 'image_import' && spawnedOthers.has(spid)) break
        const notice = truncationNotice(event.data as TruncatedEventData)
        sink.note?.(notice)
        notices.push(notice)
        break
      }
      case 'completion':
        completion = event.data as CompletionEventData
        synthetic = event.synthetic === true
        break
      default:
        break
    }
  }

  const needsRecord =
    synthetic ||
    completion === undefined ||
    typeof completion.status !== 'string' ||
    typeof completion.duration_ms !== 'number' ||
    (exit === undefined && opts.kind !== 'image_import') ||
    !streamed
  const record = needsRecord ? await api.getOperation(id, opts.signal) : undefined
  // Without a completion frame the stream may have stopped short (its retained log could not be read
  // to the end): whatever the service captured beyond what was streamed is written from the record.
  if (record !== undefined && (!streamed || (completion === undefined && !synthetic))) {
    const filled = await writeCaptured(record, sink, written, opts.signal)
    if (streamed && filled > 0) {
      const notice = `The end of the output could not be read from the event stream; the last ${filled} byte(s) were taken from the operation record (stdout and stderr may be out of order there).`
      sink.note?.(notice)
      notices.push(notice)
    }
  }
  const outcome = toOutcome(id, exit, completion, record)
  if (notices.length > 0) outcome.notices = notices
  return outcome
}

/**
 * Output the service captured, past what was already written: all of it when nothing was streamed,
 * the missing end when the stream stopped short. The output is never silently lost. Returns the
 * number of bytes written, in slices that wait for the log.
 */
async function writeCaptured(
  record: OperationResponse,
  sink: OutputSink,
  written: { stdout: number; stderr: number },
  signal: AbortSignal | undefined,
): Promise<number> {
  const result = record.metadata?.result
  let filled = 0
  // Each stream's bytes are written out before the next stream is decoded into the same buffer.
  const decoder = new StreamDecoder()
  for (const stream of ['stdout', 'stderr'] as const) {
    const repr = result?.[stream]
    if (repr === undefined || repr === null) continue
    const bytes = decoder.decode(repr)
    while (bytes.byteLength > written[stream]) {
      const slice = bytes.subarray(written[stream], written[stream] + RECORD_SLICE_BYTES)
      sink.write(stream, slice)
      written[stream] += slice.byteLength
      filled += slice.byteLength
      const full = sink.ready?.()
      if (full) await unlessAborted(full, signal)
    }
  }
  return filled
}

/**
 * Waits for a full log to take more, but not past the job's cancellation: a stuck log reader must not
 * hold the run's group (and its stop-commands window) open while the cancel prints its outcome, which
 * the runner would ignore inside the window.
 */
function unlessAborted(wait: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return wait
  signal.throwIfAborted()
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    void wait.then(
      () => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

/** The visible line for a `truncated` event: the service stopped capturing a stream at its cap. */
function truncationNotice(data: TruncatedEventData): string {
  const stream = data.stream === 'stderr' ? 'stderr' : 'stdout'
  const kept = typeof data.bytes_emitted === 'number' ? ` after ${data.bytes_emitted} bytes` : ''
  const dropped = typeof data.bytes_dropped === 'number' ? `${data.bytes_dropped} more bytes of ${stream} were dropped` : `the rest of ${stream} was dropped`
  return `[output truncated by the service${kept}: ${dropped}; raise the output-limit input to keep more]`
}

function toOutcome(
  id: string,
  exit: ExitEventData | undefined,
  completion: CompletionEventData | undefined,
  record: OperationResponse | undefined,
): OperationOutcome {
  const state = record?.metadata?.result?.state
  const status = (stringOr(completion?.status) ?? stringOr(record?.status) ?? 'FAILED') as OperationStatus
  const exitCode = exit?.code ?? state?.exit_code ?? record?.result?.exit_code ?? record?.metadata?.result?.exit_code
  const duration =
    numberOr(completion?.duration_ms) ??
    (typeof completion?.duration === 'number' ? Math.round(completion.duration * 1000) : undefined) ??
    (typeof record?.duration === 'number' ? Math.round(record.duration * 1000) : undefined)
  return {
    operationId: id,
    status,
    // −1 is the service's "no exit code" (killed by a signal): report it as none.
    exitCode: typeof exitCode === 'number' && exitCode >= 0 ? exitCode : null,
    timedOut: exit?.timed_out ?? state?.timed_out ?? false,
    error: stringOr(completion?.error) ?? stringOr(record?.error) ?? null,
    resultImage:
      stringOr(completion?.result_image_uuid) ?? stringOr(completion?.result_image) ?? stringOr(record?.result_image_uuid) ?? stringOr(record?.result?.image) ?? null,
    durationMs: duration ?? 0,
  }
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

function numberOr(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}
