// An event-stream response: its headers, then the body as shared/sse-body-writer.ts writes it (chunked,
// gzip'ed with a sync flush after every write when the client accepts gzip, so each frame can be decoded as
// it arrives; a cut for the fault rules), `data:` events, and keepalive comments while idle.
import type { ServerResponse } from 'node:http'
import { SseBodyWriter } from '../shared/sse-body-writer.ts'

export class SseWriter extends SseBodyWriter {
  constructor(res: ServerResponse, gzip: boolean) {
    res.setHeader('Content-Type', 'text/event-stream')
    res.setHeader('Cache-Control', 'no-cache')
    if (gzip) {
      res.setHeader('Content-Encoding', 'gzip')
      res.setHeader('Vary', 'Accept-Encoding')
    }
    res.writeHead(200)
    res.flushHeaders()
    super(res, gzip ? { level: 1 } : null)
  }

  /** One `data:` event (the payload must not contain line breaks). */
  event(data: string): Promise<void> {
    return this.write(`data: ${data}\n\n`)
  }

  comment(text: string): Promise<void> {
    return this.write(`: ${text}\n\n`)
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
