/**
 * The live writer of untrusted remote output (design.md "Logs"; platform notes §1.1, §2.4, §2.5).
 *
 * Every remote operation gets a trusted `::group::` and its own `::stop-commands::<token>` window.
 * Inside the window, remote bytes are assembled into lines per stream, repaired as UTF-8 across chunk
 * boundaries, sanitised and cut to at most `maxLineBytes` bytes per printed line (remote-lines.ts,
 * on bytes: the streaming hot path; line-sanitizer.ts holds the same rules on strings).
 *
 * Printed bytes reach stdout in blocks: remote output collects until a block is full or the event
 * loop turns (so a log is never more than one turn late), and is written as bytes, not strings. The
 * group's own lines (header, window end, status) are handed over at once, in order with the rest.
 *
 * Line ends: `\n`, `\r\n` and a lone `\r` all end a line, exactly as the runner's reader does. A lone
 * `\r` (progress bars) therefore prints its fragments as separate lines rather than collapsing them:
 * nothing is lost, and no fragment can escape the window because every fragment is sanitised as a line
 * of its own.
 */
import { randomUUID } from 'node:crypto'
import type { OutputSink } from '../providers/types.ts'
import { ByteBlock } from './byte-block.ts'
import { escapeCommandData } from './format.ts'
import { createLineSanitizer, guardLeadingCommand, sanitizeLine } from './line-sanitizer.ts'
import { CONTINUATION_MARKER, LineState, LONGEST_UNIT_BYTES, RemoteLines } from './remote-lines.ts'

export { CONTINUATION_MARKER }

const MARKER_BYTES = Buffer.byteLength(CONTINUATION_MARKER)
/** The leading-command guard inserts one zero-width space (3 bytes) after the cut. */
const GUARD_BYTES = 3
/** A piece must hold the longest replacement (the redacted token) besides the guard and marker. */
const MIN_LINE_BYTES = LONGEST_UNIT_BYTES + GUARD_BYTES + MARKER_BYTES
/** Remote output handed to stdout in blocks of about this size (or sooner, see LogOutput). */
const FLUSH_BYTES = 64 * 1024
/** Room a block starts with: a full block and the lines of the write that filled it. */
const BLOCK_BYTES = 2 * FLUSH_BYTES
/**
 * Backpressure from stdout: the producer waits while more than this is handed to stdout and not yet
 * written, until it is down to STDOUT_LOW_WATER. Waiting only at Node's own mark (16 KiB, less than
 * one block) would stop all work on the stream each time the reader of the pipe is behind by a block.
 */
const STDOUT_HIGH_WATER = 1024 * 1024
const STDOUT_LOW_WATER = 256 * 1024
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
   * Backpressure of the destination: a promise while it is full. Defaults to waiting while more
   * than a MiB of output is handed to stdout and not yet written (on a pipe to a slow reader,
   * writes queue in memory).
   */
  ready?: () => Promise<void> | undefined
  /** Longest printed line in UTF-8 bytes, continuation marker included (default 4096). */
  maxLineBytes?: number
  /** How many printed lines each group keeps for failure reports (default 30). */
  tailLines?: number
  /** Source of stop-commands tokens (default: a random UUID without dashes). Injected in tests. */
  newToken?: () => string
}

function defaultToken(): string {
  return randomUUID().replaceAll('-', '')
}

/** Prints the group title as trusted single-line command data. */
function groupTitle(title: string): string {
  return escapeCommandData(sanitizeLine(title.replace(/[\r\n]+/g, ' ')))
}

/**
 * Cuts `text` into pieces of at most `budget` UTF-8 bytes, never inside a character (for lines the
 * caller hands over as text; streamed output is cut on bytes by remote-lines.ts). The fast path
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
function pushPieces(pieces: readonly string[], out: string[]): void {
  const last = pieces.length - 1
  for (let i = 0; i <= last; i++) out.push(guardLeadingCommand(pieces[i] as string), i < last ? `${CONTINUATION_MARKER}\n` : '\n')
}

function validateToken(token: string): string {
  // Long enough that the runner masks it (> 6 chars), and nothing the command parser could split.
  if (!/^[A-Za-z0-9_-]{7,}$/.test(token) || RESERVED_TOKENS.has(token.toLowerCase())) {
    throw new Error('RemoteLog: stop-commands token must be 7+ characters of [A-Za-z0-9_-] and not a command name')
  }
  return token
}

/**
 * Where printed bytes go, in order. To the action's stdout (the default) remote output is handed
 * over in blocks: when a block is full, or at the next turn of the event loop, so that a stream of
 * small events costs a few large writes instead of one per event. A caller's text writer (tests,
 * one-off reports) gets every batch at once, decoded.
 */
/** Outputs holding remote output that waits for the next turn of the event loop. */
const unflushed = new Set<LogOutput>()
/** Logs with a group (and its stop-commands window) open. */
const openLogs = new Set<RemoteLog>()

/**
 * For an exit that comes while a group is open or before the next turn of the event loop (a second
 * signal, the grace period of a cancel running out): ends every open group, so its window is closed
 * and the lines waiting for it (see {@link RemoteLog.afterWindow}) are printed where the runner reads
 * them, and hands every block of remote output still waiting to stdout, so the end of the log is kept.
 */
export function closeLogsForExit(): void {
  for (const log of openLogs) log.endOpenGroup('(output interrupted: the action is exiting)')
  for (const output of unflushed) output.flush()
}

class LogOutput {
  readonly block = new ByteBlock(BLOCK_BYTES)
  /** Called with a buffer before it is handed over (and later reused): keep no view into it. */
  beforeHandOver: ((owner: Buffer) => void) | undefined
  readonly #write: ((text: string) => void) | undefined
  /** Bytes handed to stdout that it has not written yet, and producers waiting for them. */
  #inFlight = 0
  #waiting: (() => void)[] = []
  #scheduled = false
  readonly #flushLater = (): void => {
    this.#scheduled = false
    this.flush()
  }

  constructor(write: ((text: string) => void) | undefined) {
    this.#write = write
  }

  /** Trusted text of the action's own, handed over at once (after whatever came before it). */
  text(value: string): void {
    this.block.text(value)
    this.flush()
  }

  /** Remote output was added to the block. */
  added(): void {
    if (this.#write !== undefined || this.block.length >= FLUSH_BYTES) this.flush()
    else if (!this.#scheduled && this.block.length > 0) {
      this.#scheduled = true
      unflushed.add(this)
      setImmediate(this.#flushLater)
    }
  }

  flush(): void {
    unflushed.delete(this)
    if (this.block.length === 0) return
    const { bytes, owner } = this.block.take()
    this.beforeHandOver?.(owner)
    if (this.#write !== undefined) {
      this.#write(bytes.toString('utf8'))
      this.block.recycle(owner)
    } else {
      this.#inFlight += bytes.length
      process.stdout.write(bytes, () => this.#written(bytes.length, owner))
    }
  }

  /** A promise while stdout is too far behind (see STDOUT_HIGH_WATER). */
  ready(): Promise<void> | undefined {
    if (this.#inFlight <= STDOUT_HIGH_WATER) return undefined
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  /** Also called when stdout failed or closed: then nothing is in flight any more either. */
  #written(length: number, owner: Buffer): void {
    this.#inFlight -= length
    this.block.recycle(owner)
    if (this.#inFlight > STDOUT_LOW_WATER || this.#waiting.length === 0) return
    const waiting = this.#waiting
    this.#waiting = []
    for (const resolve of waiting) resolve()
  }
}

/**
 * The last N printed lines: views of the output blocks they were printed from while a block is
 * being filled, copied out when the block is handed over (it is reused afterwards), and turned into
 * text only when asked for.
 */
class TailLines {
  readonly #buffers: Buffer[] = []
  readonly #starts: number[] = []
  readonly #ends: number[] = []
  readonly #capacity: number
  #next = 0
  #size = 0

  constructor(capacity: number) {
    this.#capacity = capacity
  }

  readonly record = (buf: Buffer, start: number, end: number): void => {
    if (this.#capacity === 0) return
    this.#buffers[this.#next] = buf
    this.#starts[this.#next] = start
    this.#ends[this.#next] = end
    this.#next = (this.#next + 1) % this.#capacity
    if (this.#size < this.#capacity) this.#size++
  }

  /** Copies the lines that are views of `owner` into a buffer of their own. */
  readonly detach = (owner: Buffer): void => {
    const slots: number[] = []
    let total = 0
    for (let k = 0; k < this.#size; k++) {
      if (this.#buffers[k] !== owner) continue
      slots.push(k)
      total += (this.#ends[k] as number) - (this.#starts[k] as number)
    }
    if (slots.length === 0) return
    const copy = Buffer.allocUnsafe(total)
    let at = 0
    for (const k of slots) {
      const start = at
      at += (this.#buffers[k] as Buffer).copy(copy, at, this.#starts[k], this.#ends[k])
      this.#buffers[k] = copy
      this.#starts[k] = start
      this.#ends[k] = at
    }
  }

  toArray(): string[] {
    const lines: string[] = []
    for (let k = this.#size; k > 0; k--) {
      const at = (this.#next - k + this.#capacity) % this.#capacity
      lines.push((this.#buffers[at] as Buffer).toString('utf8', this.#starts[at], this.#ends[at]))
    }
    return lines
  }
}

interface GroupSettings {
  readonly output: LogOutput
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
  readonly #output: LogOutput
  readonly #ready: () => Promise<void> | undefined
  readonly #token: string
  readonly #lines: RemoteLines
  readonly #tail: TailLines
  readonly #onEnd: (group: RemoteLogGroup) => void
  readonly #streams = { stdout: new LineState(), stderr: new LineState() }
  /** The action's own lines among the remote output go through the same writer, as lines of their own. */
  readonly #notes = new LineState()
  #ended = false

  /** @internal Use {@link RemoteLog.open}. */
  constructor(settings: GroupSettings) {
    this.#output = settings.output
    this.#ready = settings.ready
    this.#token = settings.token
    this.#tail = new TailLines(settings.tailLines)
    this.#lines = new RemoteLines(settings.output.block, {
      budget: settings.maxLineBytes - MARKER_BYTES - GUARD_BYTES,
      token: settings.token,
      onPiece: this.#tail.record,
    })
    this.#onEnd = settings.onEnd
    settings.output.beforeHandOver = this.#tail.detach
  }

  get ended(): boolean {
    return this.#ended
  }

  ready(): Promise<void> | undefined {
    return this.#ready()
  }

  write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    if (this.#ended || chunk.length === 0) return
    this.#lines.write(this.#streams[stream], chunk)
    this.#output.added()
  }

  /**
   * Prints one line of the action's own among the remote output (e.g. that the service truncated it).
   * It is sanitised like remote text, since it may quote remote values, and goes on a line of its own.
   */
  note(text: string): void {
    if (this.#ended) return
    this.#lines.write(this.#notes, Buffer.from(`${text.replace(/[\r\n]+/g, ' ')}\n`))
    this.#output.added()
  }

  /**
   * Flushes unfinished lines as final lines, closes the window and the group, and prints `status`
   * (trusted caller text, e.g. `✓ RUN make test — exit 0 in 3.2 s`) as one plain line after it.
   */
  end(status: string): void {
    if (this.#ended) return
    this.#ended = true
    // Unfinished lines are flushed stdout first, then stderr: they have no completion order.
    this.#lines.finish(this.#streams.stdout)
    this.#lines.finish(this.#streams.stderr)
    const statusLine = sanitizeLine(status)
    this.#output.text(`::${this.#token}::\n::endgroup::\n${statusLine.length > 0 ? `${statusLine}\n` : ''}`)
    // That flush copied the last views of the tail: it outlives the group (failure reports) on copies.
    if (this.#output.beforeHandOver === this.#tail.detach) this.#output.beforeHandOver = undefined
    this.#onEnd(this)
  }

  /** The last printed (sanitised) lines of both streams, in the order they were printed. */
  tail(): string[] {
    return this.#tail.toArray()
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
  readonly #output: LogOutput
  readonly #ready: () => Promise<void> | undefined
  readonly #maxLineBytes: number
  readonly #tailLines: number
  readonly #newToken: () => string
  #open: RemoteLogGroup | null = null
  /** Lines of the action's own that wait for the open window to close. */
  #afterWindow: (() => void)[] = []

  constructor(options: RemoteLogOptions = {}) {
    this.#output = new LogOutput(options.write)
    // A custom writer without its own backpressure is taken to be always ready.
    this.#ready = options.ready ?? (options.write ? () => undefined : () => this.#output.ready())
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
      output: this.#output,
      ready: this.#ready,
      maxLineBytes: this.#maxLineBytes,
      tailLines: this.#tailLines,
      token,
      onEnd: (ended) => {
        if (this.#open !== ended) return
        this.#open = null
        openLogs.delete(this)
        const waiting = this.#afterWindow
        this.#afterWindow = []
        for (const print of waiting) print()
      },
    })
    this.#open = group
    openLogs.add(this)
    this.#output.text(`::group::${groupTitle(title)}\n::stop-commands::${token}\n`)
    return group
  }

  /** Ends the open group, if any, so that workflow commands are processed again. */
  endOpenGroup(status: string): void {
    this.#open?.end(status)
  }

  /**
   * Runs `print`, which writes lines of the action's own (core.info, core.warning) from code that
   * does not know about groups, such as a signal handler or a cancel that ends: at once when no
   * group is open, else right after the open group has ended (after its status line). Written into
   * an open window, such a line would be inert if it were a command (a warning would be lost), and it
   * could fall between the pieces of a remote line cut at the byte limit, which a reader joins by
   * their continuation markers. A window closes soon after a signal (the main flow is aborted), and
   * at the latest when the process exits ({@link closeLogsForExit}).
   */
  afterWindow(print: () => void): void {
    if (this.#open === null) print()
    else this.#afterWindow.push(print)
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
      for (const line of lines) pushPieces(splitByBytes(sanitize(line), budget), out)
      out.push(`::${token}::\n`)
      this.#output.text(out.join(''))
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
