/**
 * Server-sent events over a byte stream, on eventsource-parser. Comments and id-only frames are
 * surfaced too: the follower needs comments to account for keepalives and ids to move its resume
 * cursor.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser'

export interface SseEvent {
  kind: 'event'
  id?: string
  /** The `event:` field, `message` when the frame had none. */
  event: string
  data: string
}

export interface SseComment {
  kind: 'comment'
  comment: string
}

/** A frame that carried an `id:` but no data: it still advances the resume cursor. */
export interface SseIdOnly {
  kind: 'id'
  id: string
}

export type SseMessage = SseEvent | SseComment | SseIdOnly

export const DEFAULT_MAX_FRAME_CHARS = 4 * 1024 * 1024

export class SseFrameTooLargeError extends Error {
  constructor(limit: number) {
    super(`server-sent event line or frame exceeds ${limit} characters`)
    this.name = 'SseFrameTooLargeError'
  }
}

export interface ParseSseOptions {
  /** Bound on one buffered line or frame; larger input is an error rather than unbounded memory. */
  maxFrameChars?: number
}

export async function* parseSse(body: AsyncIterable<Uint8Array>, opts: ParseSseOptions = {}): AsyncGenerator<SseMessage> {
  const limit = opts.maxFrameChars ?? DEFAULT_MAX_FRAME_CHARS
  const ready: SseMessage[] = []
  let failure: Error | undefined
  // onId fires right before onEvent for frames with data; a pending id that no event claims was an id-only frame.
  let pendingId: string | undefined
  const flushPendingId = (): void => {
    if (pendingId !== undefined) ready.push({ kind: 'id', id: pendingId })
    pendingId = undefined
  }
  const parser = createParser({
    maxBufferSize: limit,
    onId(id) {
      flushPendingId()
      pendingId = id
    },
    onEvent(message: EventSourceMessage) {
      if (message.id !== undefined && pendingId === message.id) pendingId = undefined
      flushPendingId()
      const event: SseEvent = { kind: 'event', event: message.event ?? 'message', data: message.data }
      if (message.id !== undefined) event.id = message.id
      ready.push(event)
    },
    onComment(comment) {
      flushPendingId()
      ready.push({ kind: 'comment', comment: comment.trim() })
    },
    onError(error) {
      // Only the size bound is ours to enforce. An unknown field (`x-trace: …`) or a `retry:` that is
      // not a number is ignored, as the SSE spec says: it must not cost a run its output.
      if (error.type === 'max-buffer-size-exceeded') failure = new SseFrameTooLargeError(limit)
    },
  })
  // Streaming decode keeps multi-byte characters that straddle chunks intact.
  const decoder = new TextDecoder('utf-8')
  const drain = function* (): Generator<SseMessage> {
    flushPendingId()
    if (ready.length === 0) return
    yield* ready.splice(0)
  }
  for await (const chunk of body) {
    parser.feed(decoder.decode(chunk, { stream: true }))
    if (failure !== undefined) throw failure
    yield* drain()
  }
  const tail = decoder.decode()
  if (tail !== '') parser.feed(tail)
  if (failure !== undefined) throw failure
  // A frame without its closing blank line is incomplete and deliberately not dispatched.
  yield* drain()
}
