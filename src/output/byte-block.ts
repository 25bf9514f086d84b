/**
 * A growable run of output bytes for the log writer. `take` hands the bytes written so far to
 * whoever writes them out (stdout keeps them until the OS has them); once they are done with the
 * buffer they give it back with `recycle`, so a long stream reuses a few buffers instead of
 * allocating one per block (fresh large buffers cost page faults, and their external memory makes
 * V8 run full garbage collections).
 */
const EMPTY: Buffer = Buffer.alloc(0)
/** Buffers kept for reuse; more than a few in flight means stdout is behind anyway. */
const MAX_FREE = 4

export interface TakenBytes {
  bytes: Buffer
  /** The buffer `bytes` is a view of: give it back with `recycle` once `bytes` is no longer used. */
  owner: Buffer
}

export class ByteBlock {
  buf: Buffer = EMPTY
  length = 0
  readonly #initial: number
  readonly #free: Buffer[] = []

  constructor(initialBytes: number) {
    this.#initial = initialBytes
  }

  /** Makes room for `extra` more bytes; `buf` may be another buffer afterwards. */
  ensure(extra: number): void {
    const needed = this.length + extra
    if (needed <= this.buf.length) return
    let next = this.#free.pop()
    if (next === undefined || next.length < needed) next = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2, this.#initial))
    // The old buffer is left as it was: views into it (the tail of a group) stay valid.
    this.buf.copy(next, 0, 0, this.length)
    this.buf = next
  }

  /** Appends text as UTF-8. */
  text(value: string): void {
    this.ensure(value.length * 3)
    this.length += this.buf.write(value, this.length, 'utf8')
  }

  /** The bytes written so far; the block starts over in another buffer. */
  take(): TakenBytes {
    const taken = { bytes: this.buf.subarray(0, this.length), owner: this.buf }
    this.buf = EMPTY
    this.length = 0
    return taken
  }

  recycle(owner: Buffer): void {
    if (this.#free.length < MAX_FREE && owner.length >= this.#initial) this.#free.push(owner)
  }
}
