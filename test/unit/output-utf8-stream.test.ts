import { describe, expect, it } from 'vitest'
import { sequenceAt, Utf8Stream } from '../../src/output/utf8-stream.ts'

/**
 * The oracle: TextDecoder on the whole stream at once, encoded again. The spec defines streaming
 * decoding to give exactly this; Node's streaming decoder differs in one quirk (after an incomplete
 * first character it also drops a later U+FEFF), which the writer does not copy.
 */
function viaTextDecoder(chunks: readonly Uint8Array[]): Buffer {
  return Buffer.from(new TextDecoder('utf-8').decode(Buffer.concat(chunks)), 'utf8')
}

/** Utf8Stream's chunks with every ill-formed subpart replaced by U+FFFD as sequenceAt reads it. */
function viaUtf8Stream(chunks: readonly Uint8Array[]): Buffer {
  const stream = new Utf8Stream()
  const out: number[] = []
  const take = (bytes: Buffer, valid: boolean): void => {
    for (let i = 0; i < bytes.length; ) {
      const b = bytes[i] as number
      if (b < 0x80) {
        out.push(b)
        i++
        continue
      }
      // Valid chunks are handed through as they are: check that they really are.
      const length = sequenceAt(bytes, i, bytes.length)
      if (valid) expect(length).toBeGreaterThan(0)
      if (length > 0) out.push(...bytes.subarray(i, i + length))
      else out.push(0xef, 0xbf, 0xbd)
      i += Math.abs(length)
    }
  }
  for (const chunk of chunks) {
    const bytes = stream.push(chunk)
    take(Buffer.from(bytes), stream.valid)
  }
  const rest = stream.flush()
  take(rest, stream.valid)
  return Buffer.from(out)
}

function rng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

function splitAt(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const sorted = [...new Set(points)].filter((p) => p > 0 && p < bytes.length).sort((a, b) => a - b)
  const parts: Uint8Array[] = []
  let start = 0
  for (const point of sorted) {
    parts.push(bytes.subarray(start, point))
    start = point
  }
  parts.push(bytes.subarray(start))
  return parts
}

// Valid characters of every length, and the classic ill-formed cases: stray continuation bytes,
// overlongs, surrogates, code points above U+10FFFF, truncated sequences, bytes that never occur.
const PIECES = [
  'a', '\n', 'é', '€', '😀', '日本', '\uFEFF',
  [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf0, 0x80, 0x80, 0x80],
  [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80], [0xff], [0xfe], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3], [0xef, 0xbb],
].map((piece) => (typeof piece === 'string' ? Buffer.from(piece) : Buffer.from(piece)))

describe('Utf8Stream and sequenceAt', () => {
  it('read random mixes of valid and ill-formed bytes, split anywhere, as TextDecoder does', () => {
    const random = rng(7)
    for (let round = 0; round < 3000; round++) {
      const parts = Array.from({ length: 1 + Math.floor(random() * 12) }, () => PIECES[Math.floor(random() * PIECES.length)] as Buffer)
      const bytes = Buffer.concat(parts)
      const points = Array.from({ length: Math.floor(random() * 6) }, () => Math.floor(random() * bytes.length))
      const chunks = splitAt(bytes, points)
      expect(viaUtf8Stream(chunks), `round ${round}: ${bytes.toString('hex')} split at ${points.join(',')}`).toEqual(viaTextDecoder(chunks))
    }
  })

  it('read random bytes fed a byte at a time as TextDecoder does', () => {
    const random = rng(11)
    for (let round = 0; round < 200; round++) {
      const bytes = Buffer.from(Array.from({ length: 40 }, () => Math.floor(random() * 256)))
      const oneByOne = splitAt(bytes, [...bytes.keys()])
      expect(viaUtf8Stream(oneByOne), bytes.toString('hex')).toEqual(viaTextDecoder(oneByOne))
      expect(viaUtf8Stream([bytes])).toEqual(viaTextDecoder([bytes]))
    }
  })

  it('drops one byte order mark at the start of the stream only, also when it arrives split', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf])
    const text = Buffer.concat([bom, Buffer.from('a'), bom, Buffer.from('b')])
    for (let cut = 0; cut <= text.length; cut++) {
      expect(viaUtf8Stream(splitAt(text, [1, cut])).toString('utf8')).toBe('a\uFEFFb')
    }
    expect(viaUtf8Stream([Buffer.from([0xef]), Buffer.from([0xbb])])).toEqual(Buffer.from('\uFFFD'))
  })

  it('hands valid input through untouched (a view, no copy) and says it is valid', () => {
    const stream = new Utf8Stream()
    const chunk = Buffer.from('plain ascii and ünïcödé\n')
    const out = stream.push(chunk)
    expect(out.buffer).toBe(chunk.buffer)
    expect(stream.valid).toBe(true)
    stream.push(Buffer.from([0x61, 0xff]))
    expect(stream.valid).toBe(false)
  })
})
