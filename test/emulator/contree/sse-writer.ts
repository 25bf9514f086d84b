// Writes an SSE body as chunked transfer, gzip'ed with a Z_SYNC_FLUSH after every write so a client
// can decode each batch of frames as soon as it arrives. Also offers the deliberate ways to break
// a stream that the fault rules ask for.
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { constants as zlibConstants, createGzip, type Gzip } from 'node:zlib'

export class SseWriter {
  private readonly res: ServerResponse
  private readonly gzip: Gzip | null
  closed = false
  private readonly closedPromise: Promise<void>

  constructor(res: ServerResponse, gzip: boolean) {
    this.res = res
    // Streams are about latency and throughput, not ratio. Z_RLE has the best worst case: about
    // 250 MB/s on log text and 140 MB/s on base64 output, where level 1's string matching drops to
    // about 60 MB/s (measured on this 2-core machine).
    this.gzip = gzip ? createGzip({ level: 1, strategy: zlibConstants.Z_RLE }) : null
    this.gzip?.on('data', (chunk: Buffer) => {
      if (!this.closed) res.write(chunk)
    })
    this.gzip?.on('error', () => undefined)
    this.closedPromise = new Promise((resolve) =>
      res.on('close', () => {
        this.closed = true
        resolve()
      }),
    )
  }

  /** Resolves when the client went away (or the socket was destroyed). */
  whenClosed(): Promise<void> {
    return this.closedPromise
  }

  async write(data: Buffer | string): Promise<void> {
    if (this.closed) return
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    if (this.gzip) {
      const gzip = this.gzip
      gzip.write(bytes)
      await new Promise<void>((resolve) => gzip.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()))
    } else {
      this.res.write(bytes)
    }
    if (this.res.writableNeedDrain && !this.closed) {
      await Promise.race([new Promise((resolve) => this.res.once('drain', resolve)), this.closedPromise])
    }
  }

  /** Clean end: gzip trailer, terminal chunk, then the connection closes (Connection: close). */
  async end(): Promise<void> {
    if (this.closed) return
    if (this.gzip) {
      // 'end' of the readable side: the trailer has been emitted (and written) by then.
      const gzip = this.gzip
      const ended = new Promise<void>((resolve) => gzip.once('end', () => resolve()))
      gzip.end()
      await Promise.race([ended, this.closedPromise])
    }
    await new Promise<void>((resolve) => this.res.end(() => resolve()))
  }

  /** Terminal chunk sent, but the gzip member never gets its trailer. */
  async endWithoutGzipTrailer(): Promise<void> {
    if (this.closed) return
    await new Promise<void>((resolve) => this.res.end(() => resolve()))
    this.gzip?.destroy()
  }

  /** Waits until everything written so far has left the socket's user-space buffer. */
  async drained(): Promise<void> {
    const socket = this.res.socket as Socket | null
    await new Promise<void>((resolve) => setImmediate(resolve))
    while (socket && !socket.destroyed && socket.writableLength > 0) {
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), this.closedPromise])
    }
  }

  /** Destroys the socket without a terminal chunk: the client sees the body end mid-stream. */
  async cut(): Promise<void> {
    await this.drained()
    this.gzip?.destroy()
    this.res.socket?.destroy()
  }

  /** Writes a chunk whose size line is not hex, then closes: broken chunked framing. */
  async breakChunking(): Promise<void> {
    await this.drained()
    const socket = this.res.socket
    this.gzip?.destroy()
    if (!socket || socket.destroyed) return
    socket.end('zz\r\nnot a chunk\r\n')
  }
}
