/**
 * The JSON of one event frame, parsed so that a long base64 output value never becomes a string
 * twice. Output that is not plain printable ASCII (colours, UTF-8 text, binary) travels as base64
 * (protocol §3.1), and parsing such a frame the ordinary way turns the value into text two times:
 * the frame's text, then JSON.parse's copy of the value. Those two copies were most of what the
 * action allocated while streaming it (measured: 268 of 298 MB for 100 MB of binary output).
 *
 * Here the value's bytes are located in the frame, the rest of the frame is parsed as usual with a
 * marker in the value's place, and the value stays a view of the frame ({@link Base64Bytes}) that
 * the stream decoder decodes once. Anything else (a short frame, a value with an escape or a
 * non-ASCII byte, an `ascii` value, a marker that could be confused) is parsed the ordinary way,
 * with the same result: the two ways differ only for a raw control character inside a long base64
 * value, which JSON does not allow; there it is skipped like whitespace instead of failing.
 */
import { isAscii } from 'node:buffer'
import { sseText } from '../../sse/parser.ts'

/** Shorter frames are parsed the ordinary way: their strings are small and die young. */
export const LONG_VALUE_BYTES = 1024

const QUOTE = 0x22
const BACKSLASH = 0x5c
/** Stands in for the value while the rest of the frame is parsed: JSON text for a string of one NUL. */
const MARKER_JSON = '\\u0000'
const MARKER = '\u0000'
/**
 * The bytes of the string token `"base64"`. A frame without them cannot have `encoding: "base64"`
 * written plainly, so its strings are not walked for a value that could not be taken: printable
 * output travels as `ascii`, its text full of escaped quotes that make the walk slow. The token sits
 * among the event's short fields, before or after the long value, so only that many bytes at either
 * end of the frame are searched (the whole frame cost as much as the walk). A frame laid out
 * otherwise, or with the bytes inside other text, is parsed the ordinary way or walked in vain:
 * either gives the same result.
 */
const BASE64_TOKEN = Buffer.from('"base64"')
const SHORT_FIELDS_BYTES = 512

/** A base64 value as it came in the frame (ASCII, no escapes): a view, valid while the frame is. */
export class Base64Bytes {
  readonly bytes: Buffer
  constructor(bytes: Buffer) {
    this.bytes = bytes
  }
}

/** Parses a frame's JSON like `JSON.parse(sseText(data))`; throws as it does on what is not JSON. */
export function parseEventJson(data: Buffer): unknown {
  const value = data.length >= LONG_VALUE_BYTES && mayBeBase64(data) ? longStringAt(data) : undefined
  if (value !== undefined) {
    const parsed = withBase64Value(data, value.start, value.end)
    if (parsed !== undefined) return parsed
  }
  return JSON.parse(sseText(data))
}

/** Whether the token is among the bytes at either end of the frame. */
function mayBeBase64(data: Buffer): boolean {
  return data.subarray(0, SHORT_FIELDS_BYTES).includes(BASE64_TOKEN) || data.includes(BASE64_TOKEN, Math.max(0, data.length - SHORT_FIELDS_BYTES))
}

/**
 * The first string of at least LONG_VALUE_BYTES bytes: where its text starts and ends (quotes
 * excluded). Outside strings, JSON has neither quotes nor backslashes, so walking from quote to
 * unescaped quote finds the strings of a valid document; a document that is not valid fails to
 * parse later either way.
 */
function longStringAt(data: Buffer): { start: number; end: number } | undefined {
  let at = 0
  for (;;) {
    const open = data.indexOf(QUOTE, at)
    if (open === -1) return undefined
    let close = data.indexOf(QUOTE, open + 1)
    while (close !== -1 && escaped(data, close)) close = data.indexOf(QUOTE, close + 1)
    if (close === -1) return undefined
    if (close - open - 1 >= LONG_VALUE_BYTES) return { start: open + 1, end: close }
    at = close + 1
  }
}

/** Whether the quote at `at` is escaped: an odd number of backslashes right before it. */
function escaped(data: Buffer, at: number): boolean {
  let backslashes = 0
  while (at - backslashes - 1 >= 0 && data[at - backslashes - 1] === BACKSLASH) backslashes++
  return backslashes % 2 === 1
}

/**
 * The frame parsed with `data[start, end)` as a Base64Bytes, when that string is the `value` of the
 * event's `data` object with `encoding: "base64"`, holds plain ASCII without escapes, and the
 * marker cannot be confused with anything else in the frame; undefined otherwise.
 */
function withBase64Value(data: Buffer, start: number, end: number): unknown {
  const bytes = data.subarray(start, end)
  if (bytes.includes(BACKSLASH) || !isAscii(bytes)) return undefined
  const before = sseText(data.subarray(0, start))
  const after = sseText(data.subarray(end))
  if (before.includes(MARKER_JSON) || after.includes(MARKER_JSON)) return undefined
  let payload: unknown
  try {
    payload = JSON.parse(before + MARKER_JSON + after)
  } catch {
    return undefined
  }
  const eventData = typeof payload === 'object' && payload !== null ? (payload as { data?: unknown }).data : undefined
  if (typeof eventData !== 'object' || eventData === null) return undefined
  const repr = eventData as { value?: unknown; encoding?: unknown }
  if (repr.value !== MARKER || repr.encoding !== 'base64') return undefined
  repr.value = new Base64Bytes(bytes)
  return payload
}
