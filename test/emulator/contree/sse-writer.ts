// Writes an SSE body as chunked transfer, gzip'ed with a Z_SYNC_FLUSH after every write so a client
// can decode each batch of frames as soon as it arrives. Also offers the deliberate ways to break
// a stream that the fault rules ask for.
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { constants as zlibConstants, createGzip, type Gzip } from 'node:zlib'

/** Bytes that cannot start a deflate block (BFINAL=1, BTYPE=11 is reserved): "invalid block type". */
const NOT_DEFLATE = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])

export class SseWriter {
  private readonly res: ServerResponse
  private readonly gzip: Gzip | null
  /** Compressed bytes the gzip stream produced and nobody has taken yet. */
  private compressed: Buffer[] = []
  closed = false
  private readonly closedPromise: Promise<void>

  constructor(res: ServerResponse, gzip: boolean) {
    this.res = res
    // Streams are about latency and throughput, not ratio. Z_RLE has the best worst case: about
    // 250 MB/s on log text and 140 MB/s on base64 output, where level 1's string matching drops to
    // about 60 MB/s (measured on this 2-core machine).
    this.gzip = gzip ? createGzip({ level: 1, strategy: zlibConstants.Z_RLE }) : null
    this.gzip?.on('data', (chunk: Buffer) => this.compressed.push(chunk))
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
    const bytes = await this.encode(typeof data === 'string' ? Buffer.from(data) : data)
    if (bytes.length > 0 && !this.closed) this.res.write(bytes)
    if (this.res.writableNeedDrain && !this.closed) {
      await Promise.race([new Promise((resolve) => this.res.once('drain', resolve)), this.closedPromise])
    }
  }

  /** Clean end: gzip trailer, terminal chunk, then the connection closes (Connection: close). */
  async end(): Promise<void> {
    if (this.closed) return
    if (this.gzip) {
      const gzip = this.gzip
      const ended = new Promise<void>((resolve) => gzip.once('end', () => resolve()))
      gzip.end()
      await Promise.race([ended, this.closedPromise])
      const trailer = this.takeCompressed()
      if (trailer.length > 0 && !this.closed) this.res.write(trailer)
    }
    await new Promise<void>((resolve) => this.res.end(() => resolve()))
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

  /** The bytes that go on the wire for `data`: compressed and sync-flushed, or as is. */
  private async encode(data: Buffer): Promise<Buffer> {
    if (!this.gzip) return data
    const gzip = this.gzip
    gzip.write(data)
    await new Promise<void>((resolve) => gzip.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()))
    return this.takeCompressed()
  }

  private takeCompressed(): Buffer {
    const bytes = this.compressed.length === 1 ? (this.compressed[0] as Buffer) : Buffer.concat(this.compressed)
    this.compressed = []
    return bytes
  }

  private async drainedSocket(socket: Socket): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve))
    while (!socket.destroyed && socket.writableLength > 0) {
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), this.closedPromise])
    }
  }
}
