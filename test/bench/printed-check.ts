/**
 * Checks what the action printed for a payload, byte for byte: the remote output inside its
 * stop-commands window, with the action's own insertions taken out again (the ` ↩` continuation
 * marker that ends every piece of a cut line but the last, with its line break, and the zero-width
 * spaces of the `#\u200B#[` and leading `:\u200B:` guards), must equal `expectedPrinted(payload)`:
 * every line once, in order, nothing added. The payloads never contain either insertion.
 *
 * The check runs as the output arrives (`PrintedWindowCheck`) and keeps nothing but the few bytes
 * that may continue in the next chunk. The bench's reader of the action's stdout shares the machine
 * with the action, so what it spends is taken from the action: keeping 100 MB of output to compare
 * it afterwards cost that reader about 0.9 s of CPU per 100 MB on two cores (fresh memory for every
 * chunk), twice what reading the pipe costs.
 */
import { CONTINUATION_MARKER } from '../../src/output/remote-log.ts'

const CONTINUATION = Buffer.from(`${CONTINUATION_MARKER}\n`)
const ZERO_WIDTH_SPACE = Buffer.from('\u200B')
const LONGEST_INSERTION = Math.max(CONTINUATION.length, ZERO_WIDTH_SPACE.length)
const EMPTY = Buffer.alloc(0)

export interface PrintedCheck {
  ok: boolean
  /** Characters the action printed for the payload (insertions removed) that matched the payload. */
  printedChars: number
  expectedChars: number
  /** Lines the action printed inside the window, cut pieces counted one by one. */
  printedLines: number
  /** Where the first difference is, with a little context on both sides (JSON-quoted). */
  difference?: string
}

function countChars(bytes: Buffer): number {
  let chars = 0
  // Every UTF-8 byte that is not a continuation byte (10xxxxxx) starts a character.
  for (let i = 0; i < bytes.length; i++) if (((bytes[i] as number) & 0xc0) !== 0x80) chars++
  return chars
}

function countLines(bytes: Buffer): number {
  let lines = 0
  for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) lines++
  return lines
}

/** The insertion that starts at `data[at]`, if one does. */
function insertionAt(data: Buffer, at: number): Buffer | undefined {
  for (const insertion of [CONTINUATION, ZERO_WIDTH_SPACE]) {
    if (at + insertion.length <= data.length && data.compare(insertion, 0, insertion.length, at, at + insertion.length) === 0) return insertion
  }
  return undefined
}

/** Characters and lines of each expected output, counted once: a bench checks the same one every round. */
const expectedCounts = new WeakMap<Buffer, { chars: number; lines: number }>()

function counts(bytes: Buffer, whole: Buffer): { chars: number; lines: number } {
  const known = bytes.length === whole.length ? expectedCounts.get(whole) : undefined
  if (known !== undefined) return known
  const counted = { chars: countChars(bytes), lines: countLines(bytes) }
  if (bytes.length === whole.length) expectedCounts.set(whole, counted)
  return counted
}

/**
 * The window's bytes as they are printed, in chunks of any size: each chunk is searched for the
 * window's closing marker and compared with the expected bytes, with native comparisons, and only
 * where they differ is an insertion looked for (see #take). Bytes that may be the start of an
 * insertion or of the closing marker wait for the next chunk.
 */
export class PrintedWindowCheck {
  readonly #expected: Buffer
  /** Ends the window (`::<token>::\n`); none when the caller delimits the window itself. */
  readonly #closeMarker: Buffer | undefined
  /** Bytes kept back at the end of every chunk: an insertion or the closing marker may start there. */
  readonly #holdBack: number
  #carry: Buffer = EMPTY
  /** Window bytes pushed so far, and expected bytes matched so far. */
  #pushed = 0
  #matched = 0
  #continuations = 0
  #closedAt = -1
  #difference: string | undefined

  constructor(expected: Buffer, closeMarker?: Buffer) {
    this.#expected = expected
    this.#closeMarker = closeMarker
    // An insertion that starts before the bytes kept back ends within the chunk and is found whole.
    this.#holdBack = Math.max(LONGEST_INSERTION, closeMarker?.length ?? 0) - 1
  }

  /** The window's byte offset where the closing marker starts, once it was found. */
  get closedAt(): number {
    return this.#closedAt
  }

  /**
   * Takes the next bytes of output after the window's start. Returns how many bytes of `chunk`
   * follow the closing marker when this chunk completes it, or -1 while the window goes on.
   */
  push(chunk: Buffer): number {
    if (this.#closedAt !== -1) return chunk.length
    const carried = this.#carry.length
    const start = this.#pushed - carried
    this.#pushed += chunk.length
    if (carried > 0 && chunk.length <= 2 * this.#holdBack) return this.#scan(Buffer.concat([this.#carry, chunk]), 0, start)
    let from = 0
    if (carried > 0) {
      // Whatever starts in the bytes kept back ends within the seam: decide them there, so the
      // chunk itself is never copied.
      const seam = Buffer.concat([this.#carry, chunk.subarray(0, this.#holdBack)])
      const close = this.#closeMarker === undefined ? -1 : seam.indexOf(this.#closeMarker)
      if (close !== -1) return this.#close(seam, 0, close, start) - (seam.length - carried) + chunk.length
      from = this.#take(seam, 0, carried) - carried
    }
    return this.#scan(chunk, from, start + carried)
  }

  /** Checks `data` from `from` on (`data[0]` is at window offset `start`); keeps back what may continue. */
  #scan(data: Buffer, from: number, start: number): number {
    const close = this.#closeMarker === undefined ? -1 : data.indexOf(this.#closeMarker, from)
    if (close !== -1) return this.#close(data, from, close, start)
    const taken = this.#take(data, from, Math.max(from, data.length - this.#holdBack))
    this.#carry = Buffer.from(data.subarray(taken))
    return -1
  }

  /** The closing marker starts at `data[close]`: checks the window's last bytes; returns the bytes after the marker. */
  #close(data: Buffer, from: number, close: number, start: number): number {
    this.#take(data.subarray(0, close), from, close)
    this.#closedAt = start + close
    this.#carry = EMPTY
    return data.length - close - (this.#closeMarker as Buffer).length
  }

  /** The output ended (or the caller's window did): what was printed against what was expected. */
  finish(): PrintedCheck {
    if (this.#carry.length > 0) this.#take(this.#carry, 0, this.#carry.length)
    this.#carry = EMPTY
    if (this.#difference === undefined && this.#closeMarker !== undefined && this.#closedAt === -1) {
      this.#difference = `the window's closing marker was never printed (${this.#matched} of ${this.#expected.length} expected bytes matched)`
    }
    if (this.#difference === undefined && this.#matched !== this.#expected.length) {
      this.#difference = `the printed output ends at byte ${this.#matched} of ${this.#expected.length} expected: expected next ${this.#around(this.#expected, this.#matched)}`
    }
    const matched = counts(this.#expected.subarray(0, this.#matched), this.#expected)
    const result: PrintedCheck = {
      ok: this.#difference === undefined,
      printedChars: matched.chars,
      expectedChars: counts(this.#expected, this.#expected).chars,
      printedLines: matched.lines + this.#continuations,
    }
    if (this.#difference !== undefined) result.difference = this.#difference
    return result
  }

  /**
   * Compares `data[from, limit)` with what is expected next, insertions taken out. An insertion that
   * starts before `limit` is taken whole. Returns where in `data` the unread bytes start.
   *
   * The bytes are compared first, and an insertion is looked for only where they differ: insertions
   * are rare, and searching every chunk for them cost this reader more CPU than reading the pipe
   * (measured on the binary payload, whose output is full of the bytes they start with). Every
   * insertion holds a character the payload never has, so it differs from the expected bytes
   * within its own length: the first difference lies in the insertion, if there is one, and one
   * that starts before `limit` differs before `limit + LONGEST_INSERTION - 1`.
   */
  #take(data: Buffer, from: number, limit: number): number {
    let at = from
    while (at < limit && this.#difference === undefined) {
      const differs = this.#firstDifference(data, at, Math.min(data.length, limit + LONGEST_INSERTION - 1))
      if (differs === -1) break
      let insertion: Buffer | undefined
      let start = Math.max(at, differs - LONGEST_INSERTION + 1)
      for (; start <= differs && start < limit && insertion === undefined; start++) insertion = insertionAt(data, start)
      if (insertion === undefined) {
        // Nothing inserted before `limit`: the bytes up to it match, or differ for real.
        if (differs < limit) this.#compare(data, at, limit)
        break
      }
      start--
      this.#matched += start - at
      // The marker's line break ends a printed line: counted, as the line count needs it.
      if (insertion === CONTINUATION) this.#continuations++
      at = start + insertion.length
    }
    if (this.#difference === undefined && at < limit) {
      this.#matched += limit - at
      at = limit
    }
    return at
  }

  /** Where `data[from, to)` first differs from the expected bytes that come next, or -1. */
  #firstDifference(data: Buffer, from: number, to: number): number {
    const expected = this.#expected
    const at = this.#matched
    // Past the end of the expected bytes, every printed byte differs.
    const comparable = Math.min(to - from, expected.length - at)
    if (comparable > 0 && expected.compare(data, from, from + comparable, at, at + comparable) === 0) return comparable === to - from ? -1 : from + comparable
    // Halve the span that holds the difference with native comparisons, then walk the last bytes.
    let low = 0
    let high = comparable
    while (high - low > 64) {
      const middle = (low + high) >>> 1
      if (expected.compare(data, from + low, from + middle, at + low, at + middle) === 0) low = middle
      else high = middle
    }
    while (low < high && data[from + low] === expected[at + low]) low++
    return from + low
  }

  #compare(data: Buffer, from: number, to: number): void {
    if (this.#difference !== undefined || from === to) return
    const expected = this.#expected
    const at = this.#matched
    const length = to - from
    if (at + length <= expected.length && expected.compare(data, from, to, at, at + length) === 0) {
      this.#matched += length
      return
    }
    let same = 0
    while (same < length && at + same < expected.length && data[from + same] === expected[at + same]) same++
    this.#matched += same
    const printedContext = this.#around(data.subarray(from), same)
    this.#difference = `first difference at byte ${at + same} of ${expected.length} expected: printed ${printedContext}, expected ${this.#around(expected, at + same)}`
  }

  #around(bytes: Buffer, at: number): string {
    return JSON.stringify(bytes.subarray(Math.max(0, at - 40), at + 40).toString('utf8'))
  }
}
