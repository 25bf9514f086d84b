// Writes an SSE body (shared/sse-body-writer.ts: chunked, gzip'ed with a Z_SYNC_FLUSH after every write)
// and offers the deliberate ways to break a stream that the fault rules ask for.
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { constants as zlibConstants } from 'node:zlib'
import { SseBodyWriter } from '../shared/sse-body-writer.ts'

/** Bytes that cannot start a deflate block (BFINAL=1, BTYPE=11 is reserved): "invalid block type". */
const NOT_DEFLATE = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])

export class SseWriter extends SseBodyWriter {
  constructor(res: ServerResponse, gzip: boolean) {
    // Streams are about latency and throughput, not ratio. Z_RLE has the best worst case: about
    // 250 MB/s on log text and 140 MB/s on base64 output, where level 1's string matching drops to
    // about 60 MB/s (measured on this 2-core machine).
    super(res, gzip ? { level: 1, strategy: zlibConstants.Z_RLE } : null)
  }

  /** Terminal chunk sent, but the gzip member never gets its trailer. */
  async endWithoutGzipTrailer(): Promise<void> {
    if (this.closed) return
    await new Promise<void>((resolve) => this.res.end(() => resolve()))
    this.gzip?.destroy()
  }

  /** Bytes that are not deflate data after the valid ones, then a clean chunked end (no gzip trailer). */
  async corruptGzip(): Promise<void> {
    if (this.closed) return
    this.gzip?.destroy()
    this.res.write(NOT_DEFLATE)
    await new Promise<void>((resolve) => this.res.end(() => resolve()))
  }

  /**
   * Sends `text` (the SSE bytes before the cut) as one chunk whose size line announces more bytes
   * than follow, then destroys the socket: the body dies inside an HTTP chunk.
   */
  async cutInsideChunk(text: Buffer): Promise<void> {
    const bytes = await this.encode(text)
    await this.drained()
    const socket = this.res.socket
    this.gzip?.destroy()
    if (!socket || socket.destroyed) return
    const announced = bytes.length + 64
    socket.write(Buffer.concat([Buffer.from(`${announced.toString(16)}\r\n`), bytes]))
    await this.drainedSocket(socket)
    socket.destroy()
  }

  /** Writes a chunk whose size line is not hex, then closes: broken chunked framing. */
  async breakChunking(): Promise<void> {
    await this.drained()
    const socket = this.res.socket
    this.gzip?.destroy()
    if (!socket || socket.destroyed) return
    socket.end('zz\r\nnot a chunk\r\n')
  }

  private async drainedSocket(socket: Socket): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve))
    while (!socket.destroyed && socket.writableLength > 0) {
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), this.closedPromise])
    }
  }
}
