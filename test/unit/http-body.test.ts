/**
 * Response body decoding (body.ts): a gzip stream that arrives as thousands of small sync-flushed
 * pieces, as the service sends one per event, is decoded completely and in order, and a
 * connection that drops still delivers everything before the drop first. A Node stream (what undici
 * hands out) is taken chunk by chunk as it arrived, never joined into copies, and paused while the
 * reader is behind.
 */
import { Readable } from 'node:stream'
import { constants as zlib, createGzip, gunzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { decodeBody } from '../../src/http/body.ts'
import { TransportError } from '../../src/http/errors.ts'

/** `frames` gzipped as one stream, one sync-flushed piece per frame (plus the trailer). */
async function gzipPieces(frames: readonly string[]): Promise<Buffer[]> {
  const gzip = createGzip()
  const pieces: Buffer[] = []
  gzip.on('data', (chunk: Buffer) => pieces.push(chunk))
  for (const frame of frames) {
    gzip.write(frame)
    await new Promise<void>((resolve) => gzip.flush(zlib.Z_SYNC_FLUSH, () => resolve()))
  }
  await new Promise<void>((resolve) => gzip.end(resolve))
  return pieces
}

const ctx = { method: 'GET', url: 'http://127.0.0.1/events', timeoutMs: 1000 }

async function readAll(body: AsyncIterable<Uint8Array>): Promise<{ text: string; error?: unknown }> {
  const parts: Buffer[] = []
  try {
    for await (const chunk of body) parts.push(Buffer.from(chunk))
  } catch (error) {
    return { text: Buffer.concat(parts).toString('utf8'), error }
  }
  return { text: Buffer.concat(parts).toString('utf8') }
}

describe('decodeBody', () => {
  const frames = Array.from({ length: 5000 }, (_, i) => `id: ${i}\nevent: stdout\ndata: {"value":"line ${i} ${'x'.repeat(i % 97)}"}\n\n`)

  it('decodes thousands of small sync-flushed pieces completely and in order', async () => {
    const pieces = await gzipPieces(frames)
    async function* arriving(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < pieces.length; i++) {
        yield pieces[i] as Buffer
        // At first and now and then the network is slower than the decoder, which then waits.
        if (i < 50 || i % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
      }
    }
    const { text, error } = await readAll(decodeBody(arriving(), true, ctx))
    expect(error).toBeUndefined()
    expect(text).toBe(frames.join(''))
  })

  it('hands out what arrived before a dropped connection, then the drop', async () => {
    const pieces = await gzipPieces(frames)
    const drop = new TransportError({ method: 'GET', url: ctx.url, code: 'ECONNRESET', requestSent: true, message: 'connection lost' })
    async function* dropping(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 2500; i++) yield pieces[i] as Buffer
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    }
    const { text, error } = await readAll(decodeBody(dropping(), true, ctx))
    expect(error).toBeInstanceOf(TransportError)
    expect((error as TransportError).code).toBe(drop.code)
    // Everything the first 2,500 pieces hold arrived.
    const arrived = gunzipSync(Buffer.concat(pieces.slice(0, 2500)), { finishFlush: zlib.Z_SYNC_FLUSH }).toString('utf8')
    expect(arrived.length).toBeGreaterThan(frames.join('').length / 4)
    expect(text).toBe(arrived)
  })

  describe('a Node stream as the body', () => {
    const chunk = (fill: number, size = 16 * 1024): Buffer => Buffer.alloc(size, fill)
    const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

    it('hands on each chunk as it arrived, not joined with the ones that arrived with it', async () => {
      const sent = [chunk(1), chunk(2), chunk(3)]
      const raw = new Readable({ read: () => undefined })
      // All three arrive before the reader asks for any.
      for (const piece of sent) raw.push(piece)
      raw.push(null)
      const got: Uint8Array[] = []
      for await (const piece of decodeBody(raw, false, ctx)) got.push(piece)
      expect(got).toHaveLength(3)
      got.forEach((piece, i) => expect(piece).toBe(sent[i]))
    })

    it('pauses the stream while the reader is behind, and resumes it when the reader catches up', async () => {
      const raw = new Readable({ read: () => undefined })
      for (let i = 0; i < 16; i++) raw.push(chunk(i))
      const reader = decodeBody(raw, false, ctx)[Symbol.asyncIterator]()
      expect((await reader.next()).done).toBe(false)
      await nextTurn()
      // 15 × 16 KiB arrived and not taken: more than the reader may fall behind by.
      expect(raw.isPaused()).toBe(true)
      for (let i = 1; i < 16; i++) expect((await reader.next()).done).toBe(false)
      expect(raw.isPaused()).toBe(false)
      raw.push(null)
      expect((await reader.next()).done).toBe(true)
    })

    it('hands out what arrived before the stream failed, then the failure', async () => {
      const raw = new Readable({ read: () => undefined })
      raw.push(chunk(7))
      raw.push(chunk(8))
      const reader = decodeBody(raw, false, ctx)[Symbol.asyncIterator]()
      const first = await reader.next()
      raw.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      const second = await reader.next()
      expect([first.value, second.value].map((piece) => (piece as Uint8Array)[0])).toEqual([7, 8])
      await expect(reader.next()).rejects.toBeInstanceOf(TransportError)
    })

    it('destroys the stream when the reader stops early, releasing a reader parked for more', async () => {
      const raw = new Readable({ read: () => undefined })
      raw.push(chunk(1))
      const reader = decodeBody(raw, false, ctx)[Symbol.asyncIterator]()
      expect((await reader.next()).done).toBe(false)
      await reader.return?.(undefined)
      expect(raw.destroyed).toBe(true)
    })

    it('decodes a gzip body from a Node stream completely', async () => {
      const pieces = await gzipPieces(frames)
      const raw = new Readable({ read: () => undefined })
      const { text, error } = await (async () => {
        const reading = readAll(decodeBody(raw, true, ctx))
        for (let i = 0; i < pieces.length; i++) {
          raw.push(pieces[i])
          if (i % 700 === 0) await nextTurn()
        }
        raw.push(null)
        return reading
      })()
      expect(error).toBeUndefined()
      expect(text).toBe(frames.join(''))
    })
  })
})
