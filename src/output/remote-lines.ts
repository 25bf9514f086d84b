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

/** Runs at least this long are copied with Buffer.copy; for shorter ones a loop costs less than the call. */
const NATIVE_COPY_BYTES = 64

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

/**
 * Bytes that can be one unit by themselves, in bytes that may not be UTF-8: what each prints as
 * (up to 3 bytes as one little-endian word, written with one store) and its width (0 for every other
 * byte). A byte ≥ 0x80 is one U+FFFD, as sequenceAt reads it: always when it can never start a
 * character (80..C1, F5..FF), and a lead byte when its next byte cannot continue it (simpleRun
 * checks that). The token's first letter is taken out per instance.
 */
const SIMPLE_PACKED = new Uint32Array(256)
const SIMPLE_WIDTH = (() => {
  const width = new Uint8Array(256)
  for (let b = 0; b < 256; b++) {
    const kind = BASE_CLASSES[b] as number
    let bytes: number[] = []
    if (kind === COPY) bytes = [b]
    else if (kind === CONTROL) bytes = [0xe2, 0x90, b === DEL ? 0xa1 : 0x80 + b]
    else if (kind === HIGH) bytes = [0xef, 0xbf, 0xbd]
    SIMPLE_PACKED[b] = bytes.reduce((word, value, k) => word | (value << (8 * k)), 0)
    width[b] = bytes.length
  }
  return width
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
  /** 1 for a byte copied as it is: in bytes known to be valid UTF-8 (any byte but the special ones), and in bytes that may not be (ASCII only). */
  readonly #plainValidUtf8: Uint8Array
  readonly #plainAscii: Uint8Array
  /** Printed width of a byte that is a unit by itself in bytes that may not be UTF-8, 0 for the others. */
  readonly #simpleWidth: Uint8Array
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
    this.#plainValidUtf8 = this.#classes.map((kind) => (kind === COPY || kind === HIGH ? 1 : 0))
    this.#plainAscii = this.#classes.map((kind) => (kind === COPY ? 1 : 0))
    this.#simpleWidth = SIMPLE_WIDTH.map((width, b) => (this.#classes[b] === TOKEN_START ? 0 : width))
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
   *
   * Most bytes are copied as they are: the scan looks for the end of each run of them with one table
   * lookup per byte and copies the run at once, so the per-byte work of the units (and of cutting)
   * is paid only where they occur.
   */
  #scan(state: LineState, src: Buffer, start: number, end: number): void {
    const out = this.#out
    const budget = this.#budget
    const classes = this.#classes
    const valid = this.#valid
    // 1 for a byte copied as it is: printable ASCII, tab, escape, and any byte of valid UTF-8.
    const plain = valid ? this.#plainValidUtf8 : this.#plainAscii
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
      if (valid) {
        // A run of bytes copied as they are, as far as the piece has room for. A `#` or the token's
        // first letter that starts no unit is part of the run.
        const room = limit - o
        const stop = end - i < room ? end : i + room
        let j = plainRun(plain, src, i, stop)
        while (j < stop && this.#startsNoUnit(src, j, end)) j = plainRun(plain, src, j + 1, stop)
        if (j > i) {
          if (j - i >= NATIVE_COPY_BYTES) src.copy(buf, o, i, j)
          else for (let k = i; k < j; k++) buf[o + k - i] = src[k] as number
          o += j - i
          i = j
          if (i === end) break
        }
      } else {
        // Bytes that may not be UTF-8 (output of `cat` on a binary file, say): each byte that is one
        // unit by itself (ASCII, a control character, a byte that starts no character) is written
        // from a table, with no branch on which of them it is. The room check keeps a cut exact: closer to
        // the end of the piece than the widest unit, the general path below takes over.
        i = simpleRun(this.#simpleWidth, src, i, end, buf, o, limit)
        o = simpleRunEnd
        // Most runs stop at a character of 2 or 3 bytes (a lead byte whose second byte fits), or at
        // a `#` or the token's first letter that starts no unit. Those are taken here and the run
        // goes on: the general path below costs twice as much per stop, and in random bytes a run
        // stops every 16 bytes or so. As in simpleRun, a unit is written with one four-byte store
        // whose last byte lies in the piece's slack.
        while (i + 2 < end && o + 3 <= limit) {
          const lead = src[i] as number
          if (lead < 0xc2 || lead > 0xef) {
            if (lead >= 0x80 || !this.#startsNoUnit(src, i, end)) break
            buf[o++] = lead
            i++
          } else {
            // The run stopped here, so the second byte fits. Which of three units this is (a
            // character of 2 bytes or 3, or U+FFFD for a 3-byte lead and a second byte that the
            // third does not continue) is worked out without a branch: random bytes would
            // mispredict it.
            const three = (0xdf - lead) >>> 31
            const third = src[i + 2] as number
            const whole = three & ((((third & 0xc0) ^ 0x80) - 1) >>> 31)
            const replaced = -(three ^ whole)
            const character = lead | ((src[i + 1] as number) << 8) | ((third << 16) & -whole)
            packedViewOf(buf).setUint32(o, (REPLACEMENT_WORD & replaced) | (character & ~replaced), true)
            o += 2 + three
            i += 2 + whole
          }
          i = simpleRun(this.#simpleWidth, src, i, end, buf, o, limit)
          o = simpleRunEnd
        }
        if (i === end) break
      }
      const b = src[i] as number
      const kind = classes[b] as number
      // A byte copied as it is gets here when the piece is full, or (in bytes that may not be UTF-8)
      // close to full.
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
        if (this.#legacyAt(src, i, end)) {
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

  /** Whether the `#` or token letter at `at` is an ordinary character after all. */
  #startsNoUnit(src: Buffer, at: number, end: number): boolean {
    const kind = this.#classes[src[at] as number]
    if (kind === HASH_SIGN) return !this.#legacyAt(src, at, end)
    return kind === TOKEN_START && !this.#tokenAt(src, at, end)
  }

  /** Whether `##[` starts at `at` (within `end`). */
  #legacyAt(src: Buffer, at: number, end: number): boolean {
    return at + 2 < end && src[at + 1] === HASH && src[at + 2] === BRACKET
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

/** The end of the run of bytes marked 1 in `plain` that starts at `from`, at most `stop`. */
function plainRun(plain: Uint8Array, src: Buffer, from: number, stop: number): number {
  let j = from
  while (j < stop && plain[src[j] as number] === 1) j++
  return j
}

/** U+FFFD's three bytes as a little-endian word. */
const REPLACEMENT_WORD = 0xbdbfef

/** Where the output of the last {@link simpleRun} ends (a second result, without an allocation). */
let simpleRunEnd = 0

/**
 * For a byte that can start a sequence of 2 to 4 bytes (C2..F4): the range its second byte must
 * fall in (as utf8-stream.ts's sequenceAt checks it), as one word: the lowest value in the low 16
 * bits, the range's width above them. For every other byte a lowest value that no byte reaches.
 * One word, so the check costs one lookup.
 */
const SECOND_RANGE = new Int32Array(256).fill(0x100)
for (let lead = 0xc2; lead <= 0xf4; lead++) {
  const min = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80
  const max = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf
  SECOND_RANGE[lead] = min | ((max - min) << 16)
}

/** A DataView of the output buffer, made again only when the output moves to another buffer. */
let packedView: DataView = new DataView(new ArrayBuffer(0))
let packedViewBuffer: Buffer | undefined
function packedViewOf(buf: Buffer): DataView {
  if (packedViewBuffer !== buf) {
    packedViewBuffer = buf
    packedView = new DataView(buf.buffer, buf.byteOffset, buf.length)
  }
  return packedView
}

/**
 * Writes the run of units that take one byte each, starting at `src[from]`, to `buf[o…]` while the
 * widest of them (3 bytes) still fits before `limit`: bytes that are units by themselves, and a lead
 * byte whose next byte cannot continue it (U+FFFD; in random bytes most lead bytes are that).
 * Returns where the run stopped in `src`; the output's end is in `simpleRunEnd`.
 *
 * The loop has no branch that depends on which of these a byte is: on bytes that are not text,
 * such a branch is mispredicted so often that it costs more than the rest of the loop.
 */
function simpleRun(width: Uint8Array, src: Buffer, from: number, end: number, buf: Buffer, o: number, limit: number): number {
  const view = packedViewOf(buf)
  // The last byte is left to the general path, so every byte here has a next one.
  const last = end - 1
  const lastOut = limit - 3
  let i = from
  while (i < last && o <= lastOut) {
    const b = src[i] as number
    // A lead byte with a second byte that fits may start a valid character: sequenceAt reads it.
    const range = SECOND_RANGE[b] as number
    if (((src[i + 1] as number) - (range & 0xffff)) >>> 0 <= range >>> 16) break
    const n = width[b] as number
    if (n === 0) break
    // Four bytes written, `n` kept: the next unit overwrites the rest. The fourth byte is still
    // within the piece's slack (`o + 3 <= limit`), so nothing of the output is touched.
    view.setUint32(o, SIMPLE_PACKED[b] as number, true)
    o += n
    i++
  }
  simpleRunEnd = o
  return i
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
