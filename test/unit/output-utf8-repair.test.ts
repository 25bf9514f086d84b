import { describe, expect, it } from 'vitest'
import { replaceIllFormed, Utf8Repair } from '../../src/output/utf8-repair.ts'

/**
 * The oracle: TextDecoder on the whole stream at once, encoded again. The spec defines streaming
 * decoding to give exactly this; Node's streaming decoder differs in one quirk (after an incomplete
 * first character it also drops a later U+FEFF), which the repair does not copy.
 */
function viaTextDecoder(chunks: readonly Uint8Array[]): Buffer {
  return Buffer.from(new TextDecoder('utf-8').decode(Buffer.concat(chunks)), 'utf8')
}

function viaRepair(chunks: readonly Uint8Array[]): Buffer {
  const repair = new Utf8Repair()
  // Copies: what push returns is only valid until the next call.
  const out: Buffer[] = chunks.map((chunk) => Buffer.from(repair.push(chunk)))
  out.push(Buffer.from(repair.flush()))
  return Buffer.concat(out)
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

describe('Utf8Repair', () => {
  it('gives what TextDecoder gives for random mixes of valid and ill-formed bytes, split anywhere', () => {
    const random = rng(7)
    for (let round = 0; round < 3000; round++) {
      const parts = Array.from({ length: 1 + Math.floor(random() * 12) }, () => PIECES[Math.floor(random() * PIECES.length)] as Buffer)
      const bytes = Buffer.concat(parts)
      const points = Array.from({ length: Math.floor(random() * 6) }, () => Math.floor(random() * bytes.length))
      const chunks = splitAt(bytes, points)
      expect(viaRepair(chunks), `round ${round}: ${bytes.toString('hex')} split at ${points.join(',')}`).toEqual(viaTextDecoder(chunks))
    }
  })

  it('gives what TextDecoder gives for random bytes fed a byte at a time', () => {
    const random = rng(11)
    for (let round = 0; round < 200; round++) {
      const bytes = Buffer.from(Array.from({ length: 40 }, () => Math.floor(random() * 256)))
      const oneByOne = splitAt(bytes, [...bytes.keys()])
      expect(viaRepair(oneByOne), bytes.toString('hex')).toEqual(viaTextDecoder(oneByOne))
      expect(viaRepair([bytes])).toEqual(viaTextDecoder([bytes]))
    }
  })

  it('drops one byte order mark at the start of the stream only, also when it arrives split', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf])
    const text = Buffer.concat([bom, Buffer.from('a'), bom, Buffer.from('b')])
    for (let cut = 0; cut <= text.length; cut++) {
      expect(viaRepair(splitAt(text, [1, cut])).toString('utf8')).toBe('a\uFEFFb')
    }
    expect(viaRepair([Buffer.from([0xef]), Buffer.from([0xbb])])).toEqual(Buffer.from('\uFFFD'))
  })

  it('hands valid input through untouched (a view, no copy)', () => {
    const repair = new Utf8Repair()
    const chunk = Buffer.from('plain ascii and ünïcödé\n')
    const out = repair.push(chunk)
    expect(out.buffer).toBe(chunk.buffer)
    expect(Buffer.from(out)).toEqual(chunk)
  })

  it('replaces a truncated final character by one U+FFFD', () => {
    expect(replaceIllFormed(Buffer.from([0x61, 0xf0, 0x9f, 0x98]))).toEqual(Buffer.from('a\uFFFD'))
  })
})
