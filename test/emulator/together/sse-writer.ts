// An event-stream response: chunked, gzip'ed with a sync flush after every write when the client accepts
// gzip (so each frame can be decoded as it arrives), keepalive comments while idle, and the deliberate
// breaks the fault rules ask for.
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { constants as zlibConstants, createGzip, type Gzip } from 'node:zlib'

export class SseWriter {
  private readonly res: ServerResponse
  private readonly gzip: Gzip | null
  private readonly closedPromise: Promise<void>
  closed = false

  constructor(res: ServerResponse, gzip: boolean) {
    this.res = res
    res.setHeader('Content-Type', 'text/event-stream')
    res.setHeader('Cache-Control', 'no-cache')
    if (gzip) {
      res.setHeader('Content-Encoding', 'gzip')
      res.setHeader('Vary', 'Accept-Encoding')
    }
    res.writeHead(200)
    res.flushHeaders()
    this.gzip = gzip ? createGzip({ level: 1 }) : null
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

  /** Resolves when the client went away or the socket was destroyed. */
  whenClosed(): Promise<void> {
    return this.closedPromise
  }

  /** One `data:` event (the payload must not contain line breaks). */
  event(data: string): Promise<void> {
    return this.write(`data: ${data}\n\n`)
  }

  comment(text: string): Promise<void> {
    return this.write(`: ${text}\n\n`)
  }

  async write(text: string | Buffer): Promise<void> {
    if (this.closed) return
    const bytes = typeof text === 'string' ? Buffer.from(text) : text
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

  /** Clean end: gzip trailer, terminal chunk. */
  async end(): Promise<void> {
    if (this.closed) return
    if (this.gzip) {
      const gzip = this.gzip
      const ended = new Promise<void>((resolve) => gzip.once('end', () => resolve()))
      gzip.end()
      await Promise.race([ended, this.closedPromise])
    }
    await new Promise<void>((resolve) => this.res.end(() => resolve()))
  }

  /** Everything written so far leaves the socket, then it is destroyed: no terminal chunk. */
  async cut(): Promise<void> {
    const socket = this.res.socket as Socket | null
    await new Promise<void>((resolve) => setImmediate(resolve))
    while (socket && !socket.destroyed && socket.writableLength > 0) {
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), this.closedPromise])
    }
    this.gzip?.destroy()
    socket?.destroy()
  }
}

/**
 * Waits for `changed` (more to send) and writes a keepalive comment every `keepaliveMs` meanwhile.
 * Returns false when the client went away.
 */
export async function idleUntil(writer: SseWriter, changed: Promise<void>, keepaliveMs: number): Promise<boolean> {
  for (;;) {
    let timer: NodeJS.Timeout | undefined
    const idle = new Promise<'idle'>((resolve) => {
      timer = setTimeout(() => resolve('idle'), keepaliveMs)
    })
    const woke = await Promise.race([changed.then(() => 'changed' as const), idle, writer.whenClosed().then(() => 'closed' as const)])
    clearTimeout(timer)
    if (woke === 'changed') return true
    if (woke === 'closed') return false
    await writer.comment('keepalive')
  }
}
