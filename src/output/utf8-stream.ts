/**
 * What the log writer needs to print a stream of untrusted bytes as UTF-8 exactly as a streaming
 * `TextDecoder('utf-8')` followed by encoding would, without the round trip through a string:
 * - `Utf8Stream` holds back a character split across chunks until its last byte arrives, drops a
 *   byte order mark at the very start of the stream, and says whether a chunk is valid UTF-8
 *   (checked natively with `isUtf8`, so valid output costs no pass in JavaScript at all);
 * - `sequenceAt` reads one character of bytes that are not: a valid sequence, or an ill-formed
 *   maximal subpart that is printed as one U+FFFD (the WHATWG rule). The writer applies it in the
 *   same pass that sanitises and cuts lines (remote-lines.ts).
 *
 * Why not TextDecoder: on random bytes, V8's decoder with replacement ran at about 11 MB/s on the
 * development machine; building a string and encoding it again costs two more passes besides.
 */
import { isUtf8 } from 'node:buffer'

const EMPTY = Buffer.alloc(0)

/** Length of the sequence a lead byte starts, 0 for a byte that cannot start one. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1
  if (lead >= 0xc2 && lead <= 0xdf) return 2
  if (lead >= 0xe0 && lead <= 0xef) return 3
  if (lead >= 0xf0 && lead <= 0xf4) return 4
  return 0
}

/** The range the second byte of a sequence must fall in (later bytes are always 80..BF). */
function secondByteOk(lead: number, second: number): boolean {
  if (lead === 0xe0) return second >= 0xa0 && second <= 0xbf
  if (lead === 0xed) return second >= 0x80 && second <= 0x9f
  if (lead === 0xf0) return second >= 0x90 && second <= 0xbf
  if (lead === 0xf4) return second >= 0x80 && second <= 0x8f
  return second >= 0x80 && second <= 0xbf
}

/**
 * The character at `bytes[at]` (a byte ≥ 0x80): its length when it is a valid sequence within
 * `end`, or minus the length of the ill-formed maximal subpart that one U+FFFD stands for.
 */
export function sequenceAt(bytes: Uint8Array, at: number, end: number): number {
  const lead = bytes[at] as number
  const length = sequenceLength(lead)
  if (length === 0) return -1
  let taken = 1
  for (; taken < length; taken++) {
    const next = at + taken
    if (next >= end) return -taken
    const byte = bytes[next] as number
    if (taken === 1 ? !secondByteOk(lead, byte) : byte < 0x80 || byte > 0xbf) return -taken
  }
  return length
}

/**
 * Where a trailing sequence that is too short for its lead byte starts, or `end`. It is held back:
 * its next bytes may complete it (if they do not, it is replaced then, just the same).
 */
function incompleteTail(bytes: Uint8Array, end: number): number {
  for (let back = 1; back <= 3 && back <= end; back++) {
    const at = end - back
    const byte = bytes[at] as number
    if ((byte & 0xc0) === 0x80) continue
    return sequenceLength(byte) <= back ? end : at
  }
  return end
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * One stream's bytes, chunk by chunk, with no character split between two chunks. What `push`
 * returns is the chunk, a view of it, or a view of a scratch buffer: valid until the next call,
 * which is all a caller that copies what it keeps needs, and it keeps memory flat.
 */
export class Utf8Stream {
  /** Whether the bytes of the last push (or flush) are valid UTF-8. */
  valid = true
  #carry: Buffer = EMPTY
  #atStart = true
  #joined = EMPTY

  push(chunk: Uint8Array): Buffer {
    let bytes = asBuffer(chunk)
    if (this.#carry.length > 0) {
      const length = this.#carry.length + bytes.length
      if (this.#joined.length < length) this.#joined = Buffer.allocUnsafe(Math.max(length, 2 * this.#joined.length))
      this.#carry.copy(this.#joined)
      bytes.copy(this.#joined, this.#carry.length)
      bytes = this.#joined.subarray(0, length)
      this.#carry = EMPTY
    }
    const end = incompleteTail(bytes, bytes.length)
    if (end < bytes.length) this.#carry = Buffer.from(bytes.subarray(end))
    const complete = end === bytes.length ? bytes : bytes.subarray(0, end)
    this.valid = isUtf8(complete)
    return this.#dropBom(complete)
  }

  /** The end of the stream: a held-back incomplete character (one U+FFFD when printed). */
  flush(): Buffer {
    const carry = this.#carry
    this.#carry = EMPTY
    this.valid = carry.length === 0
    return this.#dropBom(carry)
  }

  #dropBom(bytes: Buffer): Buffer {
    if (!this.#atStart || bytes.length === 0) return bytes
    this.#atStart = false
    return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes
  }
}
