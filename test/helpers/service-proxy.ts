/**
 * A reverse proxy in front of an emulator, for what the emulator itself cannot stage: holding a
 * response back until the test says so, answering a request itself instead of forwarding it, or
 * rewriting an answer. Requests are forwarded byte for byte otherwise (streams included).
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'

export interface ProxiedRequest {
  method: string
  path: string
  headers: IncomingMessage['headers']
}

/** What to do with one request: forward it (optionally after a wait), or answer it here. */
export type ProxyDecision =
  /** `stallAfterBytes`: pass that many body bytes on, then go silent without closing (a half-open connection). */
  | { kind: 'forward'; before?: Promise<void>; beforeResponse?: Promise<void>; stallAfterBytes?: number }
  | { kind: 'answer'; status: number; headers?: Record<string, string>; body?: unknown; after?: Promise<void> }
  | { kind: 'rewrite-json'; rewrite: (body: unknown, req: ProxiedRequest) => unknown }

export interface ServiceProxy {
  url: string
  /** Every request that reached the proxy, in order. */
  requests: ProxiedRequest[]
  close(): Promise<void>
}

export async function startServiceProxy(targetUrl: string, decide: (req: ProxiedRequest) => ProxyDecision = () => ({ kind: 'forward' })): Promise<ServiceProxy> {
  const target = new URL(targetUrl)
  const requests: ProxiedRequest[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const seen: ProxiedRequest = { method: req.method ?? 'GET', path: (req.url ?? '/').split('?')[0] ?? '/', headers: req.headers }
    requests.push(seen)
    const decision = decide(seen)
    if (decision.kind === 'answer') {
      req.resume()
      void (async () => {
        if (decision.after) await decision.after
        const body = decision.body === undefined ? '' : JSON.stringify(decision.body)
        res.writeHead(decision.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...decision.headers })
        res.end(body)
      })()
      return
    }
    const forward = async (): Promise<void> => {
      if (decision.kind === 'forward' && decision.before) await decision.before
      const headers = { ...req.headers, host: target.host }
      const upstream = httpRequest({ hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upstreamRes) => {
        void (async () => {
          if (decision.kind === 'forward' && decision.beforeResponse) await decision.beforeResponse
          if (decision.kind === 'rewrite-json') {
            const chunks: Buffer[] = []
            for await (const chunk of upstreamRes) chunks.push(chunk as Buffer)
            const raw = Buffer.concat(chunks)
            const plain = /gzip/i.test(String(upstreamRes.headers['content-encoding'] ?? '')) ? gunzipSync(raw) : raw
            const text = JSON.stringify(decision.rewrite(JSON.parse(plain.toString('utf8')), seen))
            const out = { ...upstreamRes.headers, 'content-length': String(Buffer.byteLength(text)) }
            delete out['content-encoding']
            delete out['transfer-encoding']
            res.writeHead(upstreamRes.statusCode ?? 502, out)
            res.end(text)
            return
          }
          res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers)
          const limit = decision.kind === 'forward' ? decision.stallAfterBytes : undefined
          if (limit === undefined) {
            upstreamRes.pipe(res)
            return
          }
          let sent = 0
          upstreamRes.on('data', (chunk: Buffer) => {
            if (sent >= limit) return
            const part = chunk.subarray(0, limit - sent)
            sent += part.length
            res.write(part)
          })
        })()
      })
      upstream.on('error', () => res.destroy())
      req.pipe(upstream)
    }
    void forward()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A promise with its resolver, for holding a proxied response until the test lets it go. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined
  const promise = new Promise<void>((resolve) => {
    open = resolve
  })
  return { promise, open }
}
