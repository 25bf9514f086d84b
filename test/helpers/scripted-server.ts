/**
 * A small real HTTP server on 127.0.0.1 for unit tests: each request goes to the test's handler with
 * its body read, and is recorded. Helpers write SSE (gzip sync-flushed per frame, as the services do),
 * cut connections mid-frame, and end streams cleanly.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { constants as zlib, createGzip, type Gzip } from 'node:zlib'

export interface RecordedRequest {
  method: string
  path: string
  query: URLSearchParams
  headers: IncomingMessage['headers']
  body: Buffer
}

export type Handler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>

export interface ScriptedServer {
  url: string
  requests: RecordedRequest[]
  /** Requests whose path matches. */
  count(method: string, path: RegExp): number
  close(): Promise<void>
}

export async function startScriptedServer(handler: Handler): Promise<ScriptedServer> {
  const requests: RecordedRequest[] = []
  const server = createServer({ keepAlive: true }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('error', () => undefined)
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://scripted')
      const recorded: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body: Buffer.concat(chunks) }
      requests.push(recorded)
      Promise.resolve(handler(recorded, res)).catch((error: unknown) => {
        if (!res.headersSent) json(res, 500, { error: String(error) })
        else res.destroy()
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    count: (method, path) => requests.filter((r) => r.method === method && path.test(r.path)).length,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body)
  res.writeHead(status, { ...(text ? { 'Content-Type': 'application/json' } : {}), ...headers })
  res.end(text)
}

/** An event stream the test writes frame by frame. */
export interface SseStream {
  /** One `data:` event (single line). */
  event(data: string): Promise<void>
  comment(text?: string): Promise<void>
  /** Half of an event, then the socket is destroyed: broken framing, as a dropped connection. */
  cutMidEvent(data: string): Promise<void>
  /** A clean end of the response. */
  end(): void
}

export function sse(res: ServerResponse, opts: { gzip?: boolean } = {}): SseStream {
  const gzip: Gzip | null = opts.gzip === false ? null : createGzip()
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', ...(gzip ? { 'Content-Encoding': 'gzip' } : {}) })
  res.flushHeaders()
  gzip?.on('data', (chunk: Buffer) => res.write(chunk))
  const write = (text: string): Promise<void> =>
    new Promise((resolve) => {
      if (!gzip) {
        res.write(text, () => resolve())
        return
      }
      gzip.write(text)
      gzip.flush(zlib.Z_SYNC_FLUSH, () => resolve())
    })
  return {
    event: (data) => write(`data: ${data}\n\n`),
    comment: (text = 'keepalive') => write(`: ${text}\n\n`),
    async cutMidEvent(data) {
      await write(`data: ${data.slice(0, Math.ceil(data.length / 2))}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
      res.destroy()
    },
    end() {
      if (gzip) {
        gzip.end()
        gzip.once('end', () => res.end())
      } else {
        res.end()
      }
    },
  }
}
