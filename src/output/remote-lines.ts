/**
 * The hot path of streaming: untrusted remote bytes in, printed log lines out, on bytes throughout
 * (no string per chunk, no string per line). Per stream it finds line ends (`\n`, `\r\n` and a lone
 * `\r`, as the runner's reader splits them), sanitises each line as line-sanitizer.ts does on
 * strings (the stop-commands token redacted in any casing, `##[` neutralised, control characters
 * made visible), replaces ill-formed UTF-8 by U+FFFD as a decoder would (utf8-stream.ts), and cuts
 * the line into pieces of at most `budget` bytes, never inside a character; every piece but a
 * line's last ends with the continuation marker, and a piece that would start a V2 command gets the
 * zero-width guard. All of it in one pass over each byte, with a table lookup per byte.
 *
 * The sanitiser works on units: an ordinary character is copied as it is, and the token, `##[`, a
 * control character and an ill-formed sequence are each replaced as a whole, so a unit is never
 * split by a cut. A line that is still unfinished when the bytes run out keeps its unprinted part
 * (less than one piece) and is scanned again with what follows, so a token or `##[` that straddles
 * two chunks is still found.
 */
import { REDACTED_TOKEN } from './line-sanitizer.ts'
import { sequenceAt, Utf8Stream } from './utf8-stream.ts'

/** Appended to every piece of a cut line except its last, so readers know the line continues. */
export const CONTINUATION_MARKER = ' ↩'

const LF = 0x0a
const CR = 0x0d
const TAB = 0x09
const ESC = 0x1b
const SPACE = 0x20
const HASH = 0x23
const COLON = 0x3a
const BRACKET = 0x5b
const DEL = 0x7f

const MARKER = Buffer.from(CONTINUATION_MARKER)
const NEUTRAL_LEGACY = Buffer.from('#\u200B#[')
const REDACTED = Buffer.from(REDACTED_TOKEN)
const ZERO_WIDTH_SPACE = Buffer.from('\u200B')
const LINE_END = Buffer.from('\n')
/** The longest replacement unit: a piece must always have room for one. */
export const LONGEST_UNIT_BYTES = Math.max(REDACTED.length, NEUTRAL_LEGACY.length, 4)
/** Room for the guard, the marker and the line end after a full piece. */
const PIECE_SLACK = ZERO_WIDTH_SPACE.length + MARKER.length + 1 + LONGEST_UNIT_BYTES

/** Receives each printed piece (marker included, line end not) as a view of its output block. */
export type PieceRecorder = (buf: Buffer, start: number, end: number) => void

// What the scan does with a byte, looked up in a table of 256 (the token's first letter is set
// per instance).
const COPY = 0
const LINE_ENDS = 1
const CONTROL = 2
const HASH_SIGN = 3
const TOKEN_START = 4
/** A byte ≥ 0x80: copied as it is in valid UTF-8, read as a sequence otherwise. */
const HIGH = 5

const BASE_CLASSES = (() => {
  const table = new Uint8Array(256)
  for (let b = 0; b < 0x20; b++) table[b] = CONTROL
  table[TAB] = COPY
  table[ESC] = COPY
  table[LF] = LINE_ENDS
  table[CR] = LINE_ENDS
  table[DEL] = CONTROL
  table[HASH] = HASH_SIGN
  for (let b = 0x80; b < 0x100; b++) table[b] = HIGH
  return table
})()

/** One stream's assembly state. */
export class LineState {
  readonly utf8 = new Utf8Stream()
  /** Raw bytes of the current line that are not printed yet. */
  line: Buffer = Buffer.alloc(0)
  lineLength = 0
  /** Whether the bytes in `line` are known to be valid UTF-8. */
  lineValid = true
  /** The last bytes ended in `\r`; a `\n` starting the next bytes belongs to the same line end. */
  afterCR = false
}

/** Index of the first `\n` or `\r` in `bytes[from, end)`, or -1. */
function findLineEnd(bytes: Buffer, from: number, end: number): number {
  const lf = bytes.indexOf(LF, from)
  const cr = bytes.indexOf(CR, from)
  const first = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr)
  return first >= end ? -1 : first
}

/**
 * Bytes of one whitespace character at `at` (JavaScript's `\s` plus U+0085, as the runner's .NET
 * TrimStart sees it), or 0. `bytes` holds valid UTF-8, so a lead byte's sequence is complete.
 */
function whitespaceAt(bytes: Buffer, at: number): number {
  const b = bytes[at] as number
  if (b === SPACE || (b >= TAB && b <= CR)) return 1
  if (b < 0x80) return 0
  const c = bytes[at + 1]
  const d = bytes[at + 2]
  switch (b) {
    case 0xc2: // U+0085, U+00A0
      return c === 0x85 || c === 0xa0 ? 2 : 0
    case 0xe1: // U+1680
      return c === 0x9a && d === 0x80 ? 3 : 0
    case 0xe2: // U+2000..200A, U+2028, U+2029, U+202F, U+205F
      if (c === 0x80 && d !== undefined && ((d >= 0x80 && d <= 0x8a) || d === 0xa8 || d === 0xa9 || d === 0xaf)) return 3
      return c === 0x81 && d === 0x9f ? 3 : 0
    case 0xe3: // U+3000
      return c === 0x80 && d === 0x80 ? 3 : 0
    case 0xef: // U+FEFF
      return c === 0xbb && d === 0xbf ? 3 : 0
    default:
      return 0
  }
}

export interface RemoteLinesOptions {
  /** Longest piece in bytes, before the guard and the marker are added (at least LONGEST_UNIT_BYTES). */
  budget: number
  /** The window's stop-commands token ([A-Za-z0-9_-]), redacted wherever it occurs. */
  token: string
  onPiece: PieceRecorder
}

/** Output block the pieces are written to: `buf` may be replaced by `ensure`, `length` is the end. */
export interface OutputBlock {
  buf: Buffer
  length: number
  ensure(extra: number): void
}

export class RemoteLines {
  readonly #out: OutputBlock
  readonly #budget: number
  /** The token in lower case; the runner matches it case-insensitively (ASCII letters only). */
  readonly #token: Buffer
  readonly #classes: Uint8Array
  readonly #onPiece: PieceRecorder
  /** Set by #scan when the bytes ran out: where the unprinted rest of the line starts. */
  #unfinished = 0
  /** Whether the bytes #scan reads are valid UTF-8 (else each character is checked). */
  #valid = true

  constructor(out: OutputBlock, options: RemoteLinesOptions) {
    if (!/^[A-Za-z0-9_-]+$/.test(options.token)) throw new Error('RemoteLines: the token must be [A-Za-z0-9_-]')
    if (options.budget < LONGEST_UNIT_BYTES) throw new Error(`RemoteLines: budget must be at least ${LONGEST_UNIT_BYTES} bytes`)
    this.#out = out
    this.#budget = options.budget
    this.#token = Buffer.from(options.token.toLowerCase(), 'latin1')
    this.#classes = BASE_CLASSES.slice()
    this.#classes[this.#token[0] as number] = TOKEN_START
    this.#classes[options.token.toUpperCase().charCodeAt(0)] = TOKEN_START
    this.#onPiece = options.onPiece
  }

  /** Prints the lines `chunk` completes; the rest of an unfinished line waits for more. */
  write(state: LineState, chunk: Uint8Array): void {
    const bytes = state.utf8.push(chunk)
    this.#consume(state, bytes, state.utf8.valid)
  }

  /** The stream ended: a split character becomes U+FFFD and an unfinished line is printed. */
  finish(state: LineState): void {
    const rest = state.utf8.flush()
    if (rest.length > 0) this.#consume(state, rest, state.utf8.valid)
    if (state.lineLength === 0) return
    this.#append(state, LINE_END, 0, 1, true)
    this.#scanBuffered(state)
  }

  #consume(state: LineState, bytes: Buffer, valid: boolean): void {
    const end = bytes.length
    if (end === 0) return
    let at = 0
    if (state.lineLength > 0) {
      // The line began in an earlier chunk: join it with its rest (at most a piece was kept).
      const lineEnd = findLineEnd(bytes, 0, end)
      if (lineEnd === -1) {
        this.#append(state, bytes, 0, end, valid)
        if (state.lineLength >= this.#budget) this.#printFullPieces(state)
        return
      }
      this.#append(state, bytes, 0, lineEnd + 1, valid)
      this.#scanBuffered(state)
      at = lineEnd + 1
    }
    if (at === end) return
    this.#valid = valid
    this.#scan(state, bytes, at, end)
    if (this.#unfinished < end) this.#append(state, bytes, this.#unfinished, end, valid)
  }

  /** The line buffer holds a whole line, line end included: print it. */
  #scanBuffered(state: LineState): void {
    this.#valid = state.lineValid
    this.#scan(state, state.line, 0, state.lineLength)
    state.lineLength = 0
    state.lineValid = true
  }

  /** An unfinished line longer than a piece: print its full pieces now, keep the rest. */
  #printFullPieces(state: LineState): void {
    this.#valid = state.lineValid
    this.#scan(state, state.line, 0, state.lineLength)
    const keep = this.#unfinished
    state.line.copyWithin(0, keep, state.lineLength)
    state.lineLength -= keep
  }

  #append(state: LineState, bytes: Buffer, from: number, to: number, valid: boolean): void {
    if (state.lineLength === 0) state.lineValid = valid
    else state.lineValid &&= valid
    const length = to - from
    if (state.lineLength + length > state.line.length) {
      const grown = Buffer.allocUnsafe(Math.max(256, (state.lineLength + length) * 2))
      state.line.copy(grown, 0, 0, state.lineLength)
      state.line = grown
    }
    bytes.copy(state.line, state.lineLength, from, to)
    state.lineLength += length
  }

  /**
   * Prints the lines of `src[start, end)`, piece by piece. The last line, when the bytes end before
   * its line end, is not printed but for its full pieces: `#unfinished` tells where its unprinted
   * raw bytes start (`end` when there are none).
   */
  #scan(state: LineState, src: Buffer, start: number, end: number): void {
    const out = this.#out
    const budget = this.#budget
    const classes = this.#classes
    const valid = this.#valid
    let i = start
    if (state.afterCR) {
      // The previous bytes ended in `\r`: a `\n` here is the rest of that line end.
      state.afterCR = false
      if (src[i] === LF) i++
    }
    out.ensure(budget + PIECE_SLACK)
    let buf = out.buf
    let o = out.length
    let pieceOut = o
    let pieceRaw = i
    let limit = o + budget
    while (i < end) {
      const b = src[i] as number
      const kind = classes[b] as number
      // Ordinary bytes (the vast majority) are copied one by one until the piece is full.
      if (kind === COPY || (kind === HIGH && valid)) {
        if (o < limit) {
          buf[o++] = b
          i++
          continue
        }
        // Full: cut before the character this byte belongs to (its first bytes are in this piece).
        while (((src[i] as number) & 0xc0) === 0x80) {
          i--
          o--
        }
        o = this.#endPiece(buf, pieceOut, o, true)
        if (o + budget + PIECE_SLACK > buf.length) {
          out.length = o
          out.ensure(budget + PIECE_SLACK)
          buf = out.buf
        }
        pieceOut = o
        pieceRaw = i
        limit = o + budget
        continue
      }
      if (kind === LINE_ENDS) {
        o = this.#endPiece(buf, pieceOut, o, false)
        i++
        if (b === CR) {
          if (i === end) state.afterCR = true
          else if (src[i] === LF) i++
        }
        if (o + budget + PIECE_SLACK > buf.length) {
          out.length = o
          out.ensure(budget + PIECE_SLACK)
          buf = out.buf
        }
        pieceOut = o
        pieceRaw = i
        limit = o + budget
        continue
      }
      // A unit: replaced, or (a whole character) copied, as one; a cut never falls inside it.
      // The common units (control characters, U+FFFD) are written directly, the rare ones copied.
      let size = 3
      let raw = 1
      let unit: Buffer | undefined
      if (kind === HIGH) {
        // In bytes that are not valid UTF-8: a whole character, or U+FFFD for an ill-formed one.
        const length = sequenceAt(src, i, end)
        if (length > 0) {
          size = raw = length
          unit = src
        } else raw = -length
      } else if (kind === HASH_SIGN) {
        if (i + 2 < end && src[i + 1] === HASH && src[i + 2] === BRACKET) {
          unit = NEUTRAL_LEGACY
          size = NEUTRAL_LEGACY.length
          raw = 3
        } else {
          unit = src
          size = 1
        }
      } else if (kind === TOKEN_START) {
        if (this.#tokenAt(src, i, end)) {
          unit = REDACTED
          size = REDACTED.length
          raw = this.#token.length
        } else {
          unit = src
          size = 1
        }
      }
      if (o + size > limit) {
        o = this.#endPiece(buf, pieceOut, o, true)
        if (o + budget + PIECE_SLACK > buf.length) {
          out.length = o
          out.ensure(budget + PIECE_SLACK)
          buf = out.buf
        }
        pieceOut = o
        pieceRaw = i
        limit = o + budget
      }
      if (unit === undefined && kind === HIGH) {
        // U+FFFD
        buf[o++] = 0xef
        buf[o++] = 0xbf
        buf[o++] = 0xbd
      } else if (unit === undefined) {
        // The control picture U+2400 + code (U+2421 for DEL): visible, without its effect.
        buf[o++] = 0xe2
        buf[o++] = 0x90
        buf[o++] = b === DEL ? 0xa1 : 0x80 + b
      } else {
        const from = unit === src ? i : 0
        // A few bytes: a loop is cheaper than a call into Buffer.copy.
        for (let k = 0; k < size; k++) buf[o++] = unit[from + k] as number
      }
      i += raw
    }
    // The bytes ran out: take back the unfinished piece of a line that has not ended (if any).
    out.length = pieceOut
    this.#unfinished = pieceRaw
  }

  #tokenAt(src: Buffer, at: number, end: number): boolean {
    const token = this.#token
    if (end - at < token.length) return false
    for (let k = 1; k < token.length; k++) {
      let b = src[at + k] as number
      if (b >= 0x41 && b <= 0x5a) b |= 0x20
      if (b !== token[k]) return false
    }
    return true
  }

  /** Closes the piece `buf[start, end)`: guard, marker, record, line end. Returns the new end. */
  #endPiece(buf: Buffer, start: number, end: number, marked: boolean): number {
    let o = guardLeadingCommand(buf, start, end)
    if (marked) o += MARKER.copy(buf, o)
    this.#onPiece(buf, start, o)
    buf[o++] = LF
    return o
  }
}

/**
 * A piece that starts (after whitespace) with `::` gets a zero-width space between the colons, so it
 * stays inert even if the stop-commands window were ever broken. Room for it is in the budget.
 */
function guardLeadingCommand(buf: Buffer, start: number, end: number): number {
  if (start === end) return end
  const first = buf[start] as number
  // Cheap pre-check: only ':' or whitespace-ish first bytes can start a V2 command.
  if (first !== COLON && first > SPACE && first < 0x80) return end
  let at = start
  for (let width = whitespaceAt(buf, at); width > 0 && at < end; width = whitespaceAt(buf, at)) at += width
  if (at + 1 >= end || buf[at] !== COLON || buf[at + 1] !== COLON) return end
  buf.copyWithin(at + 1 + ZERO_WIDTH_SPACE.length, at + 1, end)
  ZERO_WIDTH_SPACE.copy(buf, at + 1)
  return end + ZERO_WIDTH_SPACE.length
}
