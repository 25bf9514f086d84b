/**
 * The live writer of untrusted remote output (design.md "Logs"; platform notes §1.1, §2.4, §2.5).
 *
 * Every remote operation gets a trusted `::group::` and its own `::stop-commands::<token>` window.
 * Inside the window, remote bytes are assembled into lines per stream, decoded as UTF-8 across chunk
 * boundaries, sanitised (line-sanitizer.ts) and cut to at most `maxLineBytes` bytes per printed line.
 *
 * Line ends: `\n`, `\r\n` and a lone `\r` all end a line, exactly as the runner's reader does. A lone
 * `\r` (progress bars) therefore prints its fragments as separate lines rather than collapsing them:
 * nothing is lost, and no fragment can escape the window because every fragment is sanitised as a line
 * of its own.
 */
import { randomUUID } from 'node:crypto'
import { TextDecoder } from 'node:util'
import type { OutputSink } from '../providers/types.ts'
import { escapeCommandData } from './format.ts'
import { createLineSanitizer, guardLeadingCommand, sanitizeLine, type LineSanitizer } from './line-sanitizer.ts'

/** Appended to every piece of a cut line except its last, so readers know the line continues. */
export const CONTINUATION_MARKER = ' ↩'

const MARKER_BYTES = Buffer.byteLength(CONTINUATION_MARKER)
/** The leading-command guard inserts one zero-width space (3 bytes) after the cut. */
const GUARD_BYTES = 3
const MIN_LINE_BYTES = 16
/** Annotation messages are truncated by the runner at 4096 chars; we do it ourselves, visibly. */
const ANNOTATION_MAX_CHARS = 4096

/**
 * Tokens the runner refuses (or would confuse with a command). A random token can never be one of
 * these; the check only catches a badly injected `newToken`.
 */
const RESERVED_TOKENS = new Set([
  'pause-logging', 'group', 'endgroup', 'add-mask', 'warning', 'error', 'notice', 'debug', 'save-state',
  'set-output', 'set-env', 'add-path', 'add-matcher', 'remove-matcher', 'echo', 'stop-commands',
  'internal-set-repo-path',
])

export interface RemoteLogOptions {
  /** Where log text goes; default: the action's stdout. Called once per batch of complete lines. */
  write?: (text: string) => void
  /**
   * Backpressure of the destination: a promise while it is full. Defaults to waiting for stdout's
   * 'drain' (on a pipe to a slow reader, writes queue in memory and are lost at process.exit).
   */
  ready?: () => Promise<void> | undefined
  /** Longest printed line in UTF-8 bytes, continuation marker included (default 4096). */
  maxLineBytes?: number
  /** How many printed lines each group keeps for failure reports (default 30). */
  tailLines?: number
  /** Source of stop-commands tokens (default: a random UUID without dashes). Injected in tests. */
  newToken?: () => string
}

const LINE_END = /\r\n?|\n/g

function defaultWrite(text: string): void {
  process.stdout.write(text)
}

/** Waits for stdout to drain when its buffer is full (also gives up waiting if it closes). */
export function stdoutReady(): Promise<void> | undefined {
  if (!process.stdout.writableNeedDrain) return undefined
  return new Promise((resolve) => {
    const done = (): void => {
      process.stdout.off('drain', done)
      process.stdout.off('close', done)
      process.stdout.off('error', done)
      resolve()
    }
    process.stdout.once('drain', done)
    process.stdout.once('close', done)
    process.stdout.once('error', done)
  })
}

function defaultToken(): string {
  return randomUUID().replaceAll('-', '')
}

/** Prints the group title as trusted single-line command data. */
function groupTitle(title: string): string {
  return escapeCommandData(sanitizeLine(title.replace(/[\r\n]+/g, ' ')))
}

/**
 * Cuts `text` into pieces of at most `budget` UTF-8 bytes, never inside a character. The fast path
 * avoids encoding: a UTF-16 code unit is at most 3 UTF-8 bytes.
 */
function splitByBytes(text: string, budget: number): string[] {
  if (text.length * 3 <= budget) return [text]
  const bytes = Buffer.from(text, 'utf8')
  if (bytes.length <= budget) return [text]
  const pieces: string[] = []
  let start = 0
  while (bytes.length - start > budget) {
    let end = start + budget
    // Back up to the first byte of a UTF-8 sequence (continuation bytes are 10xxxxxx).
    while (((bytes[end] ?? 0) & 0xc0) === 0x80) end--
    pieces.push(bytes.toString('utf8', start, end))
    start = end
  }
  pieces.push(bytes.toString('utf8', start))
  return pieces
}

/** Writes the pieces of one sanitised line, with markers on all but the last, into `out`. */
function pushPieces(pieces: readonly string[], markLast: boolean, out: string[], keep: (line: string) => void): void {
  const last = pieces.length - 1
  for (let i = 0; i <= last; i++) {
    const piece = guardLeadingCommand(pieces[i] as string) + (i < last || markLast ? CONTINUATION_MARKER : '')
    out.push(piece, '\n')
    keep(piece)
  }
}

function validateToken(token: string): string {
  // Long enough that the runner masks it (> 6 chars), and nothing the command parser could split.
  if (!/^[A-Za-z0-9_-]{7,}$/.test(token) || RESERVED_TOKENS.has(token.toLowerCase())) {
    throw new Error('RemoteLog: stop-commands token must be 7+ characters of [A-Za-z0-9_-] and not a command name')
  }
  return token
}

/** Per-stream line assembly state. */
interface StreamState {
  readonly decoder: TextDecoder
  /** Sanitised or raw text of the current unfinished line, joined only when needed. */
  pending: string[]
  pendingLength: number
  /** The last text ended in `\r`; a `\n` starting the next text belongs to the same line end. */
  afterCR: boolean
}

/** The last N printed lines, kept without shifting arrays on the hot path. */
class RingBuffer {
  readonly #lines: string[] = []
  readonly #capacity: number
  #next = 0

  constructor(capacity: number) {
    this.#capacity = capacity
  }

  push(line: string): void {
    if (this.#capacity === 0) return
    if (this.#lines.length < this.#capacity) this.#lines.push(line)
    else this.#lines[this.#next] = line
    this.#next = (this.#next + 1) % this.#capacity
  }

  toArray(): string[] {
    if (this.#lines.length < this.#capacity) return this.#lines.slice()
    return [...this.#lines.slice(this.#next), ...this.#lines.slice(0, this.#next)]
  }
}

interface GroupSettings {
  readonly write: (text: string) => void
  readonly ready: () => Promise<void> | undefined
  readonly maxLineBytes: number
  readonly tailLines: number
  readonly token: string
  readonly onEnd: (group: RemoteLogGroup) => void
}

/**
 * One open group and its stop-commands window. Obtain it from {@link RemoteLog.open}; it receives the
 * remote stream through {@link write} and must be closed with {@link end}. Writes after `end` are
 * ignored: they could only be printed outside the window.
 */
export class RemoteLogGroup implements OutputSink {
  readonly #write: (text: string) => void
  readonly #ready: () => Promise<void> | undefined
  readonly #token: string
  readonly #sanitize: LineSanitizer
  readonly #budget: number
  readonly #tail: RingBuffer
  readonly #onEnd: (group: RemoteLogGroup) => void
  readonly #streams = new Map<'stdout' | 'stderr', StreamState>()
  #ended = false
  readonly #keep = (line: string): void => this.#tail.push(line)

  /** @internal Use {@link RemoteLog.open}. */
  constructor(settings: GroupSettings) {
    this.#write = settings.write
    this.#ready = settings.ready
    this.#token = settings.token
    this.#sanitize = createLineSanitizer(settings.token)
    this.#budget = settings.maxLineBytes - MARKER_BYTES - GUARD_BYTES
    this.#tail = new RingBuffer(settings.tailLines)
    this.#onEnd = settings.onEnd
  }

  get ended(): boolean {
    return this.#ended
  }

  ready(): Promise<void> | undefined {
    return this.#ready()
  }

  write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    if (this.#ended || chunk.length === 0) return
    const state = this.#state(stream)
    const text = state.decoder.decode(chunk, { stream: true })
    if (text.length === 0) return
    const out: string[] = []
    this.#consume(state, text, out)
    if (out.length > 0) this.#write(out.join(''))
  }

  /**
   * Prints one line of the action's own among the remote output (e.g. that the service truncated it).
   * It is sanitised like remote text, since it may quote remote values, and goes on a line of its own.
   */
  note(text: string): void {
    if (this.#ended) return
    const out: string[] = []
    pushPieces(splitByBytes(this.#sanitize(text.replace(/[\r\n]+/g, ' ')), this.#budget), false, out, this.#keep)
    this.#write(out.join(''))
  }

  /**
   * Flushes unfinished lines as final lines, closes the window and the group, and prints `status`
   * (trusted caller text, e.g. `✓ RUN make test — exit 0 in 3.2 s`) as one plain line after it.
   */
  end(status: string): void {
    if (this.#ended) return
    this.#ended = true
    const out: string[] = []
    // Unfinished lines are flushed stdout first, then stderr: they have no completion order.
    for (const name of ['stdout', 'stderr'] as const) {
      const state = this.#streams.get(name)
      if (state === undefined) continue
      // A final decode turns a truncated trailing character into U+FFFD instead of dropping it.
      const rest = state.decoder.decode()
      if (rest.length > 0) this.#consume(state, rest, out)
      if (state.pending.length > 0) {
        const line = this.#sanitize(state.pending.join(''))
        state.pending = []
        state.pendingLength = 0
        pushPieces(splitByBytes(line, this.#budget), false, out, this.#keep)
      }
    }
    out.push(`::${this.#token}::\n`, '::endgroup::\n')
    const statusLine = sanitizeLine(status)
    if (statusLine.length > 0) out.push(statusLine, '\n')
    this.#write(out.join(''))
    this.#onEnd(this)
  }

  /** The last printed (sanitised) lines of both streams, in the order they were printed. */
  tail(): string[] {
    return this.#tail.toArray()
  }

  #state(stream: 'stdout' | 'stderr'): StreamState {
    let state = this.#streams.get(stream)
    if (state === undefined) {
      // fatal: false — invalid bytes become U+FFFD; the runner log is text, not bytes.
      state = { decoder: new TextDecoder('utf-8', { fatal: false }), pending: [], pendingLength: 0, afterCR: false }
      this.#streams.set(stream, state)
    }
    return state
  }

  #consume(state: StreamState, text: string, out: string[]): void {
    let start = 0
    if (state.afterCR) {
      state.afterCR = false
      if (text.charCodeAt(0) === 0x0a) start = 1
    }
    LINE_END.lastIndex = start
    for (let match = LINE_END.exec(text); match !== null; match = LINE_END.exec(text)) {
      let line = text.slice(start, match.index)
      if (state.pending.length > 0) {
        state.pending.push(line)
        line = state.pending.join('')
        state.pending = []
        state.pendingLength = 0
      }
      pushPieces(splitByBytes(this.#sanitize(line), this.#budget), false, out, this.#keep)
      start = match.index + match[0].length
      if (start === text.length && match[0] === '\r') state.afterCR = true
    }
    if (start < text.length) {
      const rest = start === 0 ? text : text.slice(start)
      state.pending.push(rest)
      state.pendingLength += rest.length
      // Bound memory (and the runner's line length) for output that never ends a line.
      if (state.pendingLength * 3 > this.#budget) this.#flushLongPending(state, out)
    }
  }

  /** Prints the full-size pieces of an over-long unfinished line and keeps only the remainder. */
  #flushLongPending(state: StreamState, out: string[]): void {
    // Sanitising the joined text (not each chunk) catches `##[` or the token split across chunks.
    const pieces = splitByBytes(this.#sanitize(state.pending.join('')), this.#budget)
    const remainder = pieces.pop() as string
    if (pieces.length > 0) pushPieces(pieces, true, out, this.#keep)
    state.pending = [remainder]
    state.pendingLength = remainder.length
  }
}

/**
 * Prints remote output into groups, one at a time. Groups do not nest in the runner, so opening a group
 * (or printing a failure tail) while another is open first ends the open one.
 *
 * Whenever the action itself needs commands again (annotations, setFailed, a SIGINT handler), no window
 * may be open: call {@link endOpenGroup} on every exit path that can interrupt a stream.
 */
export class RemoteLog {
  readonly #write: (text: string) => void
  readonly #ready: () => Promise<void> | undefined
  readonly #maxLineBytes: number
  readonly #tailLines: number
  readonly #newToken: () => string
  #open: RemoteLogGroup | null = null

  constructor(options: RemoteLogOptions = {}) {
    this.#write = options.write ?? defaultWrite
    // A custom writer without its own backpressure is taken to be always ready.
    this.#ready = options.ready ?? (options.write ? () => undefined : stdoutReady)
    this.#maxLineBytes = options.maxLineBytes ?? 4096
    this.#tailLines = options.tailLines ?? 30
    this.#newToken = options.newToken ?? defaultToken
    if (!Number.isInteger(this.#maxLineBytes) || this.#maxLineBytes < MIN_LINE_BYTES) {
      throw new Error(`RemoteLog: maxLineBytes must be an integer >= ${MIN_LINE_BYTES}`)
    }
    if (!Number.isInteger(this.#tailLines) || this.#tailLines < 0) {
      throw new Error('RemoteLog: tailLines must be a non-negative integer')
    }
  }

  /**
   * Opens a group titled `title` and a fresh stop-commands window. Call it once the remote stream
   * exists: the token is generated here so that remote data can never have seen it.
   */
  open(title: string): RemoteLogGroup {
    this.endOpenGroup('(output interrupted: another group was opened)')
    const token = validateToken(this.#newToken())
    const group = new RemoteLogGroup({
      write: this.#write,
      ready: this.#ready,
      maxLineBytes: this.#maxLineBytes,
      tailLines: this.#tailLines,
      token,
      onEnd: (ended) => {
        if (this.#open === ended) this.#open = null
      },
    })
    this.#open = group
    this.#write(`::group::${groupTitle(title)}\n::stop-commands::${token}\n`)
    return group
  }

  /** Ends the open group, if any, so that workflow commands are processed again. */
  endOpenGroup(status: string): void {
    this.#open?.end(status)
  }

  /**
   * After a failed operation: repeats `lines` (typically `group.tail()`) outside any group under a
   * header, in a stop-commands window of its own with a fresh token, so nobody has to open a collapsed
   * group to see why it failed.
   *
   * It raises no annotation. It returns `message` prepared for one (single `##[`-free text within the
   * runner's 4096-char limit); the caller raises exactly one annotation with it, via `core.setFailed`
   * or `core.error`, after deciding whether the step fails.
   */
  reportFailure(lines: readonly string[], message: string): string {
    this.endOpenGroup('(output interrupted)')
    if (lines.length > 0) {
      const token = validateToken(this.#newToken())
      const sanitize = createLineSanitizer(token)
      const budget = this.#maxLineBytes - MARKER_BYTES - GUARD_BYTES
      const noun = lines.length === 1 ? 'line' : 'lines'
      const out: string[] = [`Last ${lines.length} ${noun} of output:\n`, `::stop-commands::${token}\n`]
      const ignore = (): void => {}
      for (const line of lines) pushPieces(splitByBytes(sanitize(line), budget), false, out, ignore)
      out.push(`::${token}::\n`)
      this.#write(out.join(''))
    }
    return annotationMessage(message)
  }
}

/** Message text for one error annotation: no legacy markers, visibly cut at the runner's limit. */
export function annotationMessage(message: string): string {
  const neutral = message.replaceAll('##[', '#\u200B#[')
  if (neutral.length <= ANNOTATION_MAX_CHARS) return neutral
  let cut = ANNOTATION_MAX_CHARS - 1
  // Never leave half a surrogate pair behind.
  if (/[\uD800-\uDBFF]/.test(neutral.charAt(cut - 1))) cut--
  return `${neutral.slice(0, cut)}…`
}

/** {@link RemoteLog.reportFailure} with a one-off writer, for callers that hold no RemoteLog. */
export function reportFailure(lines: readonly string[], message: string, options: RemoteLogOptions = {}): string {
  return new RemoteLog(options).reportFailure(lines, message)
}
