/**
 * A growable run of output bytes that is handed off whole, never reused: once taken, a block
 * belongs to whoever writes it (stdout keeps it until the OS has it) and to the views that point
 * into it (the group's tail of printed lines), so nothing may write into it again.
 */
const EMPTY = Buffer.alloc(0)

export class ByteBlock {
  buf: Buffer
  length = 0
  readonly #initial: number

  constructor(initialBytes: number) {
    this.#initial = initialBytes
    this.buf = EMPTY
  }

  /** Makes room for `extra` more bytes; `buf` may be a new buffer afterwards. */
  ensure(extra: number): void {
    const needed = this.length + extra
    if (needed <= this.buf.length) return
    // The old buffer is left as it is: views into it (the tail) stay valid.
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2, this.#initial))
    this.buf.copy(grown, 0, 0, this.length)
    this.buf = grown
  }

  /** Appends text as UTF-8. */
  text(value: string): void {
    this.ensure(value.length * 3)
    this.length += this.buf.write(value, this.length, 'utf8')
  }

  /** The bytes written so far; the block starts over in a fresh buffer (allocated when needed). */
  take(): Buffer {
    const taken = this.buf.subarray(0, this.length)
    this.buf = EMPTY
    this.length = 0
    return taken
  }
}
