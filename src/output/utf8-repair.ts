/**
 * Turns a stream of untrusted bytes into valid UTF-8 bytes, exactly as decoding it with a streaming
 * `TextDecoder('utf-8')` and encoding the text again would, without the round trip through a string:
 * every ill-formed sequence becomes U+FFFD (one per maximal subpart, the WHATWG rule), a byte order
 * mark at the very start of the stream is dropped, and a character split across chunks is held back
 * until its last byte arrives.
 *
 * Why not TextDecoder: for output that is mostly valid, checking validity natively (`isUtf8`) and
 * passing the bytes through is far cheaper than building a string and encoding it again; for binary
 * output, V8's decoder with replacement runs at about 11 MB/s on this machine, a byte loop at
 * several times that.
 */
import { isUtf8 } from 'node:buffer'

const REPLACEMENT = [0xef, 0xbf, 0xbd] as const
const EMPTY = new Uint8Array(0)

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

/**
 * Replaces ill-formed sequences in `bytes[start, end)`; an incomplete sequence at the end counts as
 * ill-formed (one U+FFFD, as a decoder's flush makes it). Writes into `out` when it is large enough
 * (three bytes per input byte).
 */
export function replaceIllFormed(bytes: Uint8Array, start = 0, end = bytes.length, out = Buffer.allocUnsafe((end - start) * 3)): Buffer {
  let o = 0
  let i = start
  while (i < end) {
    const lead = bytes[i] as number
    if (lead < 0x80) {
      out[o++] = lead
      i++
      continue
    }
    const length = sequenceLength(lead)
    let valid = length > 0
    let taken = 1
    // The maximal subpart: as many bytes as still form a prefix of a valid sequence.
    if (valid) {
      for (; taken < length; taken++) {
        const next = i + taken
        if (next >= end) {
          valid = false
          break
        }
        const byte = bytes[next] as number
        const ok = taken === 1 ? secondByteOk(lead, byte) : byte >= 0x80 && byte <= 0xbf
        if (!ok) {
          valid = false
          break
        }
      }
    }
    if (valid) {
      for (let k = 0; k < length; k++) out[o++] = bytes[i + k] as number
    } else {
      out[o++] = REPLACEMENT[0]
      out[o++] = REPLACEMENT[1]
      out[o++] = REPLACEMENT[2]
    }
    i += taken
  }
  return out.subarray(0, o)
}

/**
 * One stream's repair state: the held-back start of a split character, and the BOM check. What it
 * returns is `chunk` itself, a view of it, or a view of a scratch buffer of its own: valid until the
 * next call, which is all a caller that copies what it keeps needs, and it keeps memory flat.
 */
export class Utf8Repair {
  #carry: Uint8Array = EMPTY
  #atStart = true
  #joined = Buffer.alloc(0)
  #replaced = Buffer.alloc(0)

  /** The valid UTF-8 bytes `chunk` completes. */
  push(chunk: Uint8Array): Uint8Array {
    let bytes = chunk
    if (this.#carry.length > 0) {
      const length = this.#carry.length + chunk.length
      if (this.#joined.length < length) this.#joined = Buffer.allocUnsafe(Math.max(length, 2 * this.#joined.length))
      this.#joined.set(this.#carry)
      this.#joined.set(chunk, this.#carry.length)
      bytes = this.#joined.subarray(0, length)
      this.#carry = EMPTY
    }
    const end = incompleteTail(bytes, bytes.length)
    if (end < bytes.length) this.#carry = bytes.slice(end)
    return this.#dropBom(this.#valid(bytes, end))
  }

  /** The end of the stream: a held-back incomplete character becomes U+FFFD. */
  flush(): Uint8Array {
    const carry = this.#carry
    this.#carry = EMPTY
    return carry.length === 0 ? EMPTY : this.#dropBom(replaceIllFormed(carry, 0, carry.length))
  }

  #valid(bytes: Uint8Array, end: number): Uint8Array {
    const view = end === bytes.length ? bytes : bytes.subarray(0, end)
    if (isUtf8(view)) return view
    if (this.#replaced.length < end * 3) this.#replaced = Buffer.allocUnsafe(Math.max(end * 3, 2 * this.#replaced.length))
    return replaceIllFormed(view, 0, end, this.#replaced)
  }

  #dropBom(bytes: Uint8Array): Uint8Array {
    if (!this.#atStart || bytes.length === 0) return bytes
    this.#atStart = false
    return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes
  }
}
