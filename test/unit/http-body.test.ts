/**
 * Response body decoding (body.ts): a gzip stream that arrives as thousands of small sync-flushed
 * pieces, as the service sends one per event, is decoded completely and in order, and a
 * connection that drops still delivers everything before the drop first.
 */
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
})
