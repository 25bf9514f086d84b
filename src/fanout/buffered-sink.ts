/**
 * One fan-out run's output, kept until the run's log group can be written: groups cannot nest or
 * interleave in a workflow log (platform notes §2.2), so a run streams into this sink while others
 * run, and its group is written in one piece once it has ended.
 *
 * Output is kept as records in arrival order, so stdout, stderr and the action's notes interleave on
 * replay exactly as they arrived. Records live in memory up to a limit (per run, and optionally a
 * budget shared by every run of a fan-out, so finished runs waiting for their turn cannot add up);
 * beyond it everything moves to a file under RUNNER_TEMP and memory is freed. Replay goes into a real
 * RemoteLogGroup, so the bytes pass through the one log writer, its sanitiser and its stop-commands
 * window, with the group's backpressure honoured.
 *
 * Record format, in memory and in the file alike: kind (1 byte: stdout, stderr, note), payload length
 * (4 bytes, big-endian), payload. Records never span a block, so a block can be parsed on its own.
 */
import { randomUUID } from 'node:crypto'
import { createWriteStream, type WriteStream } from 'node:fs'
import { open, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { finished } from 'node:stream/promises'
import { errorMessage } from '../errors.ts'
import type { OutputSink } from '../providers/types.ts'

const KIND_STDOUT = 0
const KIND_STDERR = 1
const KIND_NOTE = 2
type RecordKind = typeof KIND_STDOUT | typeof KIND_STDERR | typeof KIND_NOTE

const HEADER_BYTES = 5
/** Records are gathered in blocks of this size: tiny chunks cost neither a record nor a write each. */
const BLOCK_BYTES = 64 * 1024
/** Writes the spill file may have queued before producers are asked to wait. */
const FILE_HIGH_WATER_BYTES = 256 * 1024
/**
 * Blocks no longer in use are kept for reuse, up to this many (4 MiB): every byte of every run passes
 * through a block, and V8 lets garbage outside its heap grow by tens of MB before it collects it
 * (measured: 50 runs × 10 MB peaked at 56 MB of such garbage without reuse).
 */
const SPARE_BLOCKS = 64

export const DEFAULT_MEMORY_LIMIT_BYTES = 1024 * 1024

/**
 * Bytes of buffered output all the sinks of one fan-out may hold in memory together (a sink that
 * cannot take more from it spills to a file), and the blocks they hold it in, reused across sinks.
 */
export class MemoryBudget {
  readonly limitBytes: number
  #used = 0
  #peak = 0
  #spareBlocks: Buffer[] = []

  constructor(limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 0) throw new Error('MemoryBudget: limitBytes must be a non-negative integer')
    this.limitBytes = limitBytes
  }

  get usedBytes(): number {
    return this.#used
  }

  /** The most ever held at once, for tests and benchmarks. */
  get peakBytes(): number {
    return this.#peak
  }

  tryTake(bytes: number): boolean {
    if (this.#used + bytes > this.limitBytes) return false
    this.#used += bytes
    this.#peak = Math.max(this.#peak, this.#used)
    return true
  }

  give(bytes: number): void {
    this.#used -= bytes
  }

  /** A block to fill: a spare one when there is one. Its content is garbage. */
  takeBlock(): Buffer {
    return this.#spareBlocks.pop() ?? Buffer.allocUnsafe(BLOCK_BYTES)
  }

  /** A block nobody reads any more. Blocks of another size (exact copies, long notes) are left to the collector. */
  giveBlock(block: Buffer): void {
    if (block.byteLength === BLOCK_BYTES && this.#spareBlocks.length < SPARE_BLOCKS) this.#spareBlocks.push(block)
  }
}

export interface BufferedSinkOptions {
  /** Bytes this run keeps in memory before its output moves to a file (default 1 MiB). */
  memoryLimitBytes?: number
  /** Shared by the sinks of one fan-out; memory is taken from it as well as from the run's own limit. */
  budget?: MemoryBudget
  /** Where spill files go (default RUNNER_TEMP, which the runner empties after the job, else the OS temp dir). */
  directory?: string
}

export class BufferedSink implements OutputSink {
  readonly #memoryLimit: number
  /** The fan-out's shared budget, or one of this sink's own. */
  readonly #budget: MemoryBudget
  readonly #directory: string | undefined
  /** Sealed blocks while the output fits in memory. */
  #blocks: Buffer[] = []
  #memoryBytes = 0
  #peakMemoryBytes = 0
  /** The block being filled; taken on first use and given back on close. */
  #block: Buffer | undefined
  #blockUsed = 0
  /** Offset of the open record's header in #block, -1 when no record is open. */
  #recordStart = -1
  #recordKind: RecordKind = KIND_STDOUT
  #file: { path: string; stream: WriteStream } | undefined
  #fileError: unknown
  #closed = false
  #disposed = false

  constructor(options: BufferedSinkOptions = {}) {
    this.#memoryLimit = options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES
    if (!Number.isSafeInteger(this.#memoryLimit) || this.#memoryLimit < 0) {
      throw new Error('BufferedSink: memoryLimitBytes must be a non-negative integer')
    }
    this.#budget = options.budget ?? new MemoryBudget(Number.MAX_SAFE_INTEGER)
    this.#directory = options.directory
  }

  /** Bytes of output held in memory now (blocks sealed so far; the block being filled is not counted). */
  get memoryBytes(): number {
    return this.#memoryBytes
  }

  get peakMemoryBytes(): number {
    return this.#peakMemoryBytes
  }

  /** The spill file, while there is one. */
  get spillPath(): string | undefined {
    return this.#file?.path
  }

  write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    if (this.#closed || chunk.byteLength === 0) return
    this.#append(stream === 'stdout' ? KIND_STDOUT : KIND_STDERR, chunk)
  }

  /** Kept in order among the output; replayed as the group's own note line. */
  note(text: string): void {
    if (this.#closed) return
    const bytes = Buffer.from(text, 'utf8')
    const size = HEADER_BYTES + bytes.byteLength
    this.#closeRecord()
    // A note is one record, never cut in two (that would replay as two lines).
    if (this.#blockUsed + size > BLOCK_BYTES) this.#sealBlock()
    const record = size > BLOCK_BYTES ? Buffer.allocUnsafe(size) : (this.#block ??= this.#newBlock())
    const at = record === this.#block ? this.#blockUsed : 0
    writeHeader(record, at, KIND_NOTE, bytes.byteLength)
    bytes.copy(record, at + HEADER_BYTES)
    if (record !== this.#block) return this.#store(record)
    this.#blockUsed += size
    if (this.#blockUsed === BLOCK_BYTES) this.#sealBlock()
  }

  /** Once spilled, the producer waits while the file's write queue is full. */
  ready(): Promise<void> | undefined {
    const stream = this.#file?.stream
    if (stream === undefined || !stream.writableNeedDrain || stream.destroyed) return undefined
    return new Promise((resolve) => {
      const done = (): void => {
        stream.off('drain', done)
        stream.off('close', done)
        stream.off('error', done)
        resolve()
      }
      stream.once('drain', done)
      stream.once('close', done)
      stream.once('error', done)
    })
  }

  /** No more output will come: seals what was gathered and frees the working blocks. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#sealBlock()
    if (this.#block !== undefined) this.#budget.giveBlock(this.#block)
    this.#block = undefined
    this.#closed = true
  }

  /**
   * Writes everything kept, in arrival order, into `target` (a RemoteLogGroup), waiting on its
   * backpressure, then frees the memory and removes the file, also when replay fails. Closes the sink.
   * A chunk given to `target.write` is valid only during that call (its buffer is reused), as with
   * any producer that reads into one buffer.
   */
  async replayInto(target: OutputSink): Promise<void> {
    this.close()
    try {
      const reader = new RecordReader(target)
      let readError: unknown
      if (this.#file !== undefined) {
        await this.#finishFile()
        readError = await this.#readFile(this.#file.path, reader, target)
      } else {
        for (const block of this.#blocks) {
          reader.push(block)
          await target.ready?.()
        }
        for (const block of this.#blocks) this.#budget.giveBlock(block)
        this.#blocks = []
      }
      const lost = this.#fileError ?? readError
      if (lost !== undefined) {
        target.note?.(`[fan-out: some of this run's output is missing: it could not be kept on disk (${errorMessage(lost)})]`)
      } else if (!reader.atRecordEnd) {
        target.note?.('[fan-out: the saved output ended in the middle of a record; its end is missing]')
      }
    } finally {
      await this.dispose()
    }
  }

  /** Reads the file through one reused buffer; resolves to the read error, if any (a target's error is thrown). */
  async #readFile(filePath: string, reader: RecordReader, target: OutputSink): Promise<unknown> {
    let handle
    try {
      handle = await open(filePath, 'r')
    } catch (error) {
      return error
    }
    try {
      const buffer = Buffer.allocUnsafe(BLOCK_BYTES)
      for (;;) {
        let bytesRead: number
        try {
          bytesRead = (await handle.read(buffer, 0, BLOCK_BYTES, null)).bytesRead
        } catch (error) {
          return error
        }
        if (bytesRead === 0) return undefined
        reader.push(buffer.subarray(0, bytesRead))
        await target.ready?.()
      }
    } finally {
      await handle.close().catch(() => undefined)
    }
  }

  /** Frees the memory and removes the file without replaying. Idempotent; never throws. */
  async dispose(): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    this.#closed = true
    if (this.#block !== undefined) this.#budget.giveBlock(this.#block)
    this.#block = undefined
    for (const block of this.#blocks) this.#budget.giveBlock(block)
    this.#blocks = []
    this.#release(this.#memoryBytes)
    const file = this.#file
    if (file === undefined) return
    // The file is opened asynchronously: removing it before the open is done would leave it behind.
    file.stream.destroy()
    if (!file.stream.closed) await new Promise<void>((resolve) => file.stream.once('close', () => resolve()))
    await rm(file.path, { force: true }).catch(() => undefined)
  }

  #append(kind: RecordKind, bytes: Uint8Array): void {
    let offset = 0
    while (offset < bytes.byteLength) {
      if (this.#recordStart < 0 || this.#recordKind !== kind) {
        this.#closeRecord()
        if (BLOCK_BYTES - this.#blockUsed <= HEADER_BYTES) this.#sealBlock()
        this.#block ??= this.#newBlock()
        this.#recordStart = this.#blockUsed
        this.#recordKind = kind
        this.#blockUsed += HEADER_BYTES
      }
      const block = this.#block as Buffer
      const n = Math.min(bytes.byteLength - offset, BLOCK_BYTES - this.#blockUsed)
      block.set(bytes.subarray(offset, offset + n), this.#blockUsed)
      this.#blockUsed += n
      offset += n
      if (this.#blockUsed === BLOCK_BYTES) this.#sealBlock()
    }
  }

  #closeRecord(): void {
    if (this.#recordStart < 0 || this.#block === undefined) return
    writeHeader(this.#block, this.#recordStart, this.#recordKind, this.#blockUsed - this.#recordStart - HEADER_BYTES)
    this.#recordStart = -1
  }

  /** Hands the block on: a full one as it is (a fresh one replaces it), a partial one as an exact copy. */
  #sealBlock(): void {
    if (this.#block === undefined || this.#blockUsed === 0) return
    this.#closeRecord()
    const full = this.#blockUsed === BLOCK_BYTES
    const sealed = full ? this.#block : Buffer.from(this.#block.subarray(0, this.#blockUsed))
    if (full) this.#block = undefined
    this.#blockUsed = 0
    this.#store(sealed)
  }

  #store(sealed: Buffer): void {
    if (this.#file === undefined && this.#tryHold(sealed.byteLength)) {
      this.#blocks.push(sealed)
      return
    }
    if (this.#file === undefined) this.#spill()
    this.#writeToFile(sealed)
  }

  #tryHold(bytes: number): boolean {
    if (this.#memoryBytes + bytes > this.#memoryLimit) return false
    if (!this.#budget.tryTake(bytes)) return false
    this.#memoryBytes += bytes
    this.#peakMemoryBytes = Math.max(this.#peakMemoryBytes, this.#memoryBytes)
    return true
  }

  #release(bytes: number): void {
    this.#budget.give(bytes)
    this.#memoryBytes -= bytes
  }

  /** Moves what is in memory to a new file; from now on everything goes there. */
  #spill(): void {
    const directory = this.#directory ?? (process.env['RUNNER_TEMP'] || os.tmpdir())
    const filePath = path.join(directory, `sandbox-action-output-${randomUUID()}.bin`)
    // 0600 and exclusive create: the output may hold secrets the runner would mask only when printed.
    const stream = createWriteStream(filePath, { flags: 'wx', mode: 0o600, highWaterMark: FILE_HIGH_WATER_BYTES })
    // An unhandled 'error' would end the process; a failed spill only loses this run's output.
    stream.on('error', (error) => {
      this.#fileError ??= error
    })
    this.#file = { path: filePath, stream }
    const blocks = this.#blocks
    this.#blocks = []
    this.#release(this.#memoryBytes)
    for (const block of blocks) this.#writeToFile(block)
  }

  #newBlock(): Buffer {
    return this.#budget.takeBlock()
  }

  #writeToFile(block: Buffer): void {
    const stream = this.#file?.stream
    if (stream === undefined || this.#fileError !== undefined || stream.destroyed) return
    stream.write(block, (error) => {
      // Written: another run can fill it. After a write error the stream may still hold it.
      if (!error) this.#budget.giveBlock(block)
    })
  }

  async #finishFile(): Promise<void> {
    const stream = this.#file?.stream
    if (stream === undefined || stream.destroyed) return
    stream.end()
    try {
      await finished(stream)
    } catch (error) {
      this.#fileError ??= error
    }
  }
}

function writeHeader(buffer: Buffer, at: number, kind: RecordKind, length: number): void {
  buffer[at] = kind
  buffer.writeUInt32BE(length, at + 1)
}

/**
 * Parses records from chunks cut anywhere and writes them to `target`: output as it comes (a record's
 * payload may be written in pieces; the target assembles lines itself), a note once whole.
 */
class RecordReader {
  readonly #target: OutputSink
  readonly #header = Buffer.alloc(HEADER_BYTES)
  #headerFill = 0
  #kind: RecordKind = KIND_STDOUT
  /** Payload bytes of the current record still to come; -1 while reading a header. */
  #remaining = -1
  #notePieces: Buffer[] = []

  constructor(target: OutputSink) {
    this.#target = target
  }

  get atRecordEnd(): boolean {
    return this.#remaining < 0 && this.#headerFill === 0
  }

  push(chunk: Buffer): void {
    let offset = 0
    while (offset < chunk.byteLength) {
      if (this.#remaining < 0) {
        const n = Math.min(HEADER_BYTES - this.#headerFill, chunk.byteLength - offset)
        chunk.copy(this.#header, this.#headerFill, offset, offset + n)
        this.#headerFill += n
        offset += n
        if (this.#headerFill < HEADER_BYTES) return
        this.#headerFill = 0
        const kind = this.#header[0]
        if (kind !== KIND_STDOUT && kind !== KIND_STDERR && kind !== KIND_NOTE) throw new Error(`saved output is corrupt (record kind ${kind})`)
        this.#kind = kind
        this.#remaining = this.#header.readUInt32BE(1)
        if (this.#remaining === 0) this.#endRecord()
        continue
      }
      const n = Math.min(this.#remaining, chunk.byteLength - offset)
      const piece = chunk.subarray(offset, offset + n)
      offset += n
      this.#remaining -= n
      // Copied: the chunk's buffer is reused for the next read.
      if (this.#kind === KIND_NOTE) this.#notePieces.push(Buffer.from(piece))
      else this.#target.write(this.#kind === KIND_STDOUT ? 'stdout' : 'stderr', piece)
      if (this.#remaining === 0) this.#endRecord()
    }
  }

  #endRecord(): void {
    if (this.#kind === KIND_NOTE) {
      this.#target.note?.(Buffer.concat(this.#notePieces).toString('utf8'))
      this.#notePieces = []
    }
    this.#remaining = -1
  }
}
