// The body of an event-stream response as both emulators write it: chunked, gzip'ed when the client accepts
// it with a Z_SYNC_FLUSH after every write (so a client can decode each batch of frames as it arrives), with
// back-pressure, a clean end and a cut. Headers, the frames themselves and the emulator's other ways to
// break a stream stay with each emulator's sse-writer.ts, which extends this.
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { constants as zlibConstants, createGzip, type Gzip, type ZlibOptions } from 'node:zlib'

export class SseBodyWriter {
  protected readonly res: ServerResponse
  protected readonly gzip: Gzip | null
  /** Compressed bytes the gzip stream produced and nobody has taken yet. */
  private compressed: Buffer[] = []
  closed = false
  protected readonly closedPromise: Promise<void>

  /** `gzip`: the compression settings, or null for an identity body. */
  constructor(res: ServerResponse, gzip: ZlibOptions | null) {
    this.res = res
    this.gzip = gzip ? createGzip(gzip) : null
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

  /** Clean end: gzip trailer, terminal chunk. */
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

  /** Waits until everything written so far has left the socket's user-space buffer. */
  async drained(): Promise<void> {
    const socket = this.res.socket as Socket | null
    await new Promise<void>((resolve) => setImmediate(resolve))
    while (socket && !socket.destroyed && socket.writableLength > 0) {
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), this.closedPromise])
    }
  }

  /** Everything written so far leaves the socket, then it is destroyed: no terminal chunk. */
  async cut(): Promise<void> {
    await this.drained()
    this.gzip?.destroy()
    this.res.socket?.destroy()
  }

  /** The bytes that go on the wire for `data`: compressed and sync-flushed, or as is. */
  protected async encode(data: Buffer): Promise<Buffer> {
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
}
