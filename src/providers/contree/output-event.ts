/**
 * Reads an output event (`stdout`/`stderr`) straight from the bytes of its SSE data, the one kind
 * of event a stream carries by the thousand: the event JSON is checked and read in one pass, the
 * chunk's value is never turned into a JS string, and base64 is decoded once, into bytes.
 *
 * It is deliberately narrow. It accepts exactly what JSON.parse would read into the same event
 * (follow.ts's toOperationEvent): an object with an integer `id`, the `type`, optional `ts` and
 * `spid`, any other top-level member with a plain value, and `data` holding `value`, `encoding`
 * and optionally `truncated`. Anything else (another event type, a float, a nested member it does
 * not know, non-ASCII text, a `\u` escape beyond ASCII, malformed JSON) returns undefined, and the
 * caller reads the frame the general way, which also decides what is malformed.
 */
import { decodeBase64, streamReprOf, type OperationEvent } from './wire.ts'

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const OPEN = 0x7b
const CLOSE = 0x7d
const MINUS = 0x2d

/** What a JSON escape letter stands for (the `u` escape is handled apart). */
const SIMPLE_ESCAPES = new Map<number, number>([
  [QUOTE, QUOTE],
  [BACKSLASH, BACKSLASH],
  [0x2f, 0x2f], // /
  [0x62, 0x08], // b
  [0x66, 0x0c], // f
  [0x6e, 0x0a], // n
  [0x72, 0x0d], // r
  [0x74, 0x09], // t
])

/** Signals "not the narrow shape": the caller falls back to JSON.parse. */
class NotFastShape extends Error {}
const NOT_FAST = new NotFastShape()

/** A JSON string's raw bytes between its quotes, and whether it holds escapes. */
interface RawString {
  start: number
  end: number
  escaped: boolean
}

class Reader {
  readonly #bytes: Buffer
  at = 0

  constructor(bytes: Buffer) {
    this.#bytes = bytes
  }

  get done(): boolean {
    this.space()
    return this.at === this.#bytes.length
  }

  space(): void {
    const bytes = this.#bytes
    for (;;) {
      const b = bytes[this.at]
      if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return
      this.at++
    }
  }

  expect(byte: number): void {
    this.space()
    if (this.#bytes[this.at] !== byte) throw NOT_FAST
    this.at++
  }

  /** After a member: true for `,` (another follows), false for the closing `}`. */
  next(): boolean {
    this.space()
    const b = this.#bytes[this.at++]
    if (b === COMMA) return true
    if (b === CLOSE) return false
    throw NOT_FAST
  }

  peek(): number | undefined {
    this.space()
    return this.#bytes[this.at]
  }

  rawString(): RawString {
    this.expect(QUOTE)
    const bytes = this.#bytes
    const start = this.at
    let escaped = false
    for (;;) {
      const b = bytes[this.at++]
      if (b === QUOTE) return { start, end: this.at - 1, escaped }
      if (b === BACKSLASH) {
        escaped = true
        const letter = bytes[this.at++] as number
        if (letter === 0x75) {
          if (!/^[0-9a-fA-F]{4}$/.test(bytes.toString('latin1', this.at, this.at + 4))) throw NOT_FAST
          this.at += 4
        } else if (!SIMPLE_ESCAPES.has(letter)) throw NOT_FAST
      } else if (b === undefined || b < 0x20 || b >= 0x80) {
        // Unterminated, a raw control character (invalid JSON) or non-ASCII text: not ours.
        throw NOT_FAST
      }
    }
  }

  /** A string's bytes, unescaped; only escapes that stand for ASCII are read here. */
  stringBytes(raw: RawString): Buffer {
    const bytes = this.#bytes
    if (!raw.escaped) return bytes.subarray(raw.start, raw.end)
    const out = Buffer.allocUnsafe(raw.end - raw.start)
    let o = 0
    for (let i = raw.start; i < raw.end; i++) {
      const b = bytes[i] as number
      if (b !== BACKSLASH) {
        out[o++] = b
        continue
      }
      // rawString has checked every escape already.
      const letter = bytes[++i] as number
      const simple = SIMPLE_ESCAPES.get(letter)
      if (simple !== undefined) {
        out[o++] = simple
        continue
      }
      const code = Number.parseInt(bytes.toString('latin1', i + 1, i + 5), 16)
      if (code >= 0x80) throw NOT_FAST
      out[o++] = code
      i += 4
    }
    return out.subarray(0, o)
  }

  /** A short string without escapes (keys, `type`, `ts`, `encoding`). */
  plainString(): string {
    const raw = this.rawString()
    if (raw.escaped) throw NOT_FAST
    return this.#bytes.toString('latin1', raw.start, raw.end)
  }

  /** An integer as JSON writes one. */
  integer(): number {
    this.space()
    const bytes = this.#bytes
    const negative = bytes[this.at] === MINUS
    if (negative) this.at++
    const start = this.at
    let value = 0
    for (;;) {
      const b = bytes[this.at] as number
      if (b < 0x30 || b > 0x39) break
      value = value * 10 + (b - 0x30)
      this.at++
    }
    const digits = this.at - start
    // JSON has no leading zeros; past 15 digits a double is no longer exact. A fraction or an
    // exponent stops the digits and then fails the member's end (`,` or `}`).
    if (digits === 0 || digits > 15 || (digits > 1 && bytes[start] === 0x30)) throw NOT_FAST
    return negative ? -value : value
  }

  literal(): boolean | null {
    this.space()
    for (const [text, value] of LITERALS) {
      if (this.#bytes.compare(text, 0, text.length, this.at, this.at + text.length) === 0) {
        this.at += text.length
        return value
      }
    }
    throw NOT_FAST
  }

  /** A member value we do not keep: a string, an integer, true, false or null. */
  skipPlainValue(): void {
    const b = this.peek()
    if (b === QUOTE) this.rawString()
    else if (b === MINUS || (b !== undefined && b >= 0x30 && b <= 0x39)) this.integer()
    else this.literal()
  }
}

const LITERALS: readonly [Buffer, boolean | null][] = [
  [Buffer.from('true'), true],
  [Buffer.from('false'), false],
  [Buffer.from('null'), null],
]

interface StreamData {
  value: Buffer
  encoding: string
  truncated: boolean | undefined
}

function readStreamData(reader: Reader): StreamData {
  reader.expect(OPEN)
  let value: Buffer | undefined
  let encoding: string | undefined
  let truncated: boolean | undefined
  if (reader.peek() === CLOSE) throw NOT_FAST
  do {
    const key = reader.plainString()
    reader.expect(COLON)
    if (key === 'value') value = reader.stringBytes(reader.rawString())
    else if (key === 'encoding') encoding = reader.plainString()
    else if (key === 'truncated') {
      const flag = reader.literal()
      if (flag === null) throw NOT_FAST
      truncated = flag
    } else throw NOT_FAST
  } while (reader.next())
  if (value === undefined || encoding === undefined) throw NOT_FAST
  return { value, encoding, truncated }
}

/** The output event `data` (one SSE frame's data bytes) holds, or undefined to read it the general way. */
export function readOutputEvent(data: Buffer): OperationEvent | undefined {
  try {
    const reader = new Reader(data)
    reader.expect(OPEN)
    let id: number | undefined
    let ts: string | undefined
    let spid: number | undefined
    let type: string | undefined
    let stream: StreamData | undefined
    if (reader.peek() === CLOSE) return undefined
    do {
      const key = reader.plainString()
      reader.expect(COLON)
      switch (key) {
        case 'id':
          id = reader.integer()
          break
        case 'spid':
          spid = reader.integer()
          break
        case 'ts':
          ts = reader.plainString()
          break
        case 'type':
          type = reader.plainString()
          break
        case 'data':
          stream = readStreamData(reader)
          break
        default:
          reader.skipPlainValue()
      }
    } while (reader.next())
    if (!reader.done || id === undefined || stream === undefined || (type !== 'stdout' && type !== 'stderr')) return undefined
    const text = stream.encoding === 'base64' ? stream.value.toString('latin1') : undefined
    const bytes = text === undefined ? stream.value : decodeBase64(text)
    const event: OperationEvent = { id, type, data: streamReprOf(bytes, stream.encoding, stream.truncated, text) as unknown as Record<string, unknown> }
    if (ts !== undefined) event.ts = ts
    if (spid !== undefined) event.spid = spid
    return event
  } catch (error) {
    if (error === NOT_FAST) return undefined
    throw error
  }
}
