/**
 * Server-sent events over a byte stream (the WHATWG event-stream format). Comments and id-only
 * frames are surfaced too: the follower needs comments to account for keepalives and ids to move
 * its resume cursor.
 *
 * It frames bytes, not text: lines are found with a native byte search, and the data field of a
 * frame is handed out as the bytes it arrived in (a view, not a copy, when the frame came in one
 * piece); nothing decodes whole chunks into strings that are then cut up again. `sseText` turns
 * data into text (natively, and for ASCII data by a plain copy), and `parseSse` is the same parser
 * with the data decoded, for callers that want text.
 *
 * Following the spec: `\r\n`, `\r` and `\n` all end a line; one leading byte order mark is skipped;
 * multiple `data:` lines are joined with `\n`; one space after the colon is dropped; `retry:`,
 * unknown fields (`x-trace: …`) and lines without a known field name are ignored; an `id` holding
 * NUL is ignored; a frame without its closing blank line is not dispatched.
 */
import { isAscii } from 'node:buffer'

/** A frame with data, as text. */
export interface SseEvent {
  kind: 'event'
  id?: string
  /** The `event:` field, `message` when the frame had none. */
  event: string
  data: string
}

/** A frame with data, as the bytes of its data field (lines joined with `\n`). Never written again. */
export interface SseDataEvent {
  kind: 'event'
  id?: string
  event: string
  data: Buffer
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
export type SseByteMessage = SseDataEvent | SseComment | SseIdOnly

/** Bound on one buffered line or frame, in bytes (the service's frames are ASCII: bytes are characters). */
export const DEFAULT_MAX_FRAME_CHARS = 4 * 1024 * 1024

export class SseFrameTooLargeError extends Error {
  constructor(limit: number) {
    super(`server-sent event line or frame exceeds ${limit} bytes`)
    this.name = 'SseFrameTooLargeError'
  }
}

export interface ParseSseOptions {
  /** Bound on one buffered line or frame; larger input is an error rather than unbounded memory. */
  maxFrameChars?: number
}

const LF = 0x0a
const CR = 0x0d
const SPACE = 0x20
const COLON = 0x3a
const BOM = Buffer.from([0xef, 0xbb, 0xbf])
const DATA = Buffer.from('data')
const EVENT = Buffer.from('event')
const ID = Buffer.from('id')

// Field values are decoded one by one, so a BOM inside one is text, not a stream marker.
const fieldDecoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })

/**
 * Text of an SSE field value (or data) as bytes: UTF-8, ill-formed sequences replaced. Event data
 * is nearly always ASCII (JSON, base64), and ASCII bytes are their own Latin-1 text: copying them
 * into a one-byte string is several times faster than UTF-8 decoding.
 */
export function sseText(bytes: Uint8Array): string {
  const buffer = asBuffer(bytes)
  return isAscii(buffer) ? buffer.toString('latin1') : fieldDecoder.decode(buffer)
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function nameIs(bytes: Buffer, start: number, end: number, name: Buffer): boolean {
  return end - start === name.length && bytes.compare(name, 0, name.length, start, end) === 0
}

/** The event-stream state machine; `push` appends whatever complete frames a chunk finishes. */
export class SseFramer {
  readonly #limit: number
  /** Bytes of a line that has not ended yet (views of earlier chunks). */
  #partial: Buffer[] = []
  #partialBytes = 0
  /** Still at the very start of the stream, where a byte order mark may be. */
  #atStart = true
  /** The previous chunk ended in `\r`: a `\n` starting the next one is the same line end. */
  #skipLF = false
  #id: string | undefined
  #event: string | undefined
  #data: Buffer[] = []
  #dataBytes = 0

  constructor(limit = DEFAULT_MAX_FRAME_CHARS) {
    this.#limit = limit
  }

  push(chunk: Uint8Array, out: SseByteMessage[]): void {
    let bytes = asBuffer(chunk)
    if (this.#atStart) {
      // Wait until three bytes decide whether the stream opens with a byte order mark.
      const seen = Buffer.concat([...this.#partial, bytes])
      if (seen.length < BOM.length && BOM.subarray(0, seen.length).equals(seen)) {
        this.#partial = [seen]
        this.#partialBytes = seen.length
        return
      }
      this.#atStart = false
      this.#partial = []
      this.#partialBytes = 0
      bytes = seen.subarray(0, BOM.length).equals(BOM) ? seen.subarray(BOM.length) : seen
    }
    const end = bytes.length
    let at = 0
    if (this.#skipLF && end > 0) {
      this.#skipLF = false
      if (bytes[0] === LF) at = 1
    }
    // Line ends are searched with indexOf; a chunk without `\r` (the usual case) is searched for it once.
    let nextCR = bytes.indexOf(CR, at)
    while (at < end) {
      const nextLF = bytes.indexOf(LF, at)
      if (nextCR !== -1 && nextCR < at) nextCR = bytes.indexOf(CR, at)
      const lineEnd = nextLF === -1 ? nextCR : nextCR === -1 ? nextLF : Math.min(nextLF, nextCR)
      if (lineEnd === -1) {
        this.#partial.push(bytes.subarray(at))
        this.#partialBytes += end - at
        this.#checkLimit()
        return
      }
      if (this.#partialBytes > 0) {
        this.#partial.push(bytes.subarray(at, lineEnd))
        const line = Buffer.concat(this.#partial)
        this.#partial = []
        this.#partialBytes = 0
        this.#line(line, 0, line.length, out)
      } else {
        this.#line(bytes, at, lineEnd, out)
      }
      at = lineEnd + 1
      if (bytes[lineEnd] === CR) {
        if (at === end) this.#skipLF = true
        else if (bytes[at] === LF) at++
      }
    }
  }

  #checkLimit(): void {
    if (this.#partialBytes + this.#dataBytes > this.#limit) throw new SseFrameTooLargeError(this.#limit)
  }

  #line(bytes: Buffer, start: number, end: number, out: SseByteMessage[]): void {
    if (start === end) return this.#dispatch(out)
    if (bytes[start] === COLON) {
      const from = start + (bytes[start + 1] === SPACE ? 2 : 1)
      out.push({ kind: 'comment', comment: sseText(bytes.subarray(Math.min(from, end), end)).trim() })
      return
    }
    let colon = bytes.indexOf(COLON, start)
    if (colon >= end) colon = -1
    const nameEnd = colon === -1 ? end : colon
    const valueStart = colon === -1 ? end : Math.min(end, colon + (bytes[colon + 1] === SPACE ? 2 : 1))
    if (nameIs(bytes, start, nameEnd, DATA)) {
      this.#data.push(bytes.subarray(valueStart, end))
      this.#dataBytes += end - valueStart + 1
      this.#checkLimit()
    } else if (nameIs(bytes, start, nameEnd, EVENT)) {
      this.#event = valueStart === end ? undefined : sseText(bytes.subarray(valueStart, end))
    } else if (nameIs(bytes, start, nameEnd, ID)) {
      const id = sseText(bytes.subarray(valueStart, end))
      if (!id.includes('\0')) this.#id = id
    }
    // `retry:` (reconnect delay: the follower has its own ladder) and unknown fields are ignored.
  }

  #dispatch(out: SseByteMessage[]): void {
    const id = this.#id
    if (this.#data.length > 0) {
      const data = this.#data.length === 1 ? (this.#data[0] as Buffer) : joinLines(this.#data)
      const event: SseDataEvent = { kind: 'event', event: this.#event ?? 'message', data }
      if (id !== undefined) event.id = id
      out.push(event)
    } else if (id !== undefined) {
      out.push({ kind: 'id', id })
    }
    this.#id = undefined
    this.#event = undefined
    this.#data = []
    this.#dataBytes = 0
  }
}

function joinLines(lines: readonly Buffer[]): Buffer {
  const parts: Buffer[] = []
  for (const line of lines) parts.push(line, NEWLINE)
  parts.pop()
  return Buffer.concat(parts)
}

const NEWLINE = Buffer.from('\n')

/** Frames of `body` as they complete, data as bytes. */
export async function* parseSseBytes(body: AsyncIterable<Uint8Array>, opts: ParseSseOptions = {}): AsyncGenerator<SseByteMessage> {
  const framer = new SseFramer(opts.maxFrameChars ?? DEFAULT_MAX_FRAME_CHARS)
  const ready: SseByteMessage[] = []
  for await (const chunk of body) {
    framer.push(chunk, ready)
    for (let k = 0; k < ready.length; k++) yield ready[k] as SseByteMessage
    ready.length = 0
  }
  // A frame without its closing blank line is incomplete and deliberately not dispatched.
}

/** Frames of `body` as they complete, data as text. */
export async function* parseSse(body: AsyncIterable<Uint8Array>, opts: ParseSseOptions = {}): AsyncGenerator<SseMessage> {
  for await (const message of parseSseBytes(body, opts)) {
    yield message.kind === 'event' ? { ...message, data: sseText(message.data) } : message
  }
}
