import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { constants as zlib, createGzip, gzipSync } from 'node:zlib'
import { Agent } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { HttpClient } from '../../src/http/client.ts'
import { HttpError, TransportError, TruncatedBodyError } from '../../src/http/errors.ts'
import { RetryPolicy } from '../../src/http/retry.ts'

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.()
})

async function listen(handler: Handler, port = 0): Promise<{ url: string; port: number; requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }> }> {
  const requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }> = []
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (chunk: Buffer) => parts.push(chunk))
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
      handler(req, res, Buffer.concat(parts).toString('utf8'))
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  const actual = (server.address() as AddressInfo).port
  return { url: `http://127.0.0.1:${actual}`, port: actual, requests }
}

function client(baseUrl: string, extra: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}): { http: HttpClient; sleeps: number[] } {
  const sleeps: number[] = []
  const dispatcher = new Agent({ connect: { timeout: 5000 } })
  cleanups.push(() => dispatcher.close())
  const sleep = async (ms: number): Promise<void> => {
    sleeps.push(ms)
  }
  return { http: new HttpClient({ baseUrl, dispatcher, sleep, ...extra }), sleeps }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = gzipSync(JSON.stringify(body))
  res.writeHead(status, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': payload.length, ...headers })
  res.end(payload)
}

describe('HttpClient', () => {
  it('joins paths onto a base path, encodes the query and sends the default headers', async () => {
    const server = await listen((_req, res) => sendJson(res, 200, { ok: true }))
    const { http } = client(`${server.url}/sandboxes/`, { headers: { Authorization: 'Bearer t0k', Project: 'p1' } })
    const res = await http.request({ method: 'GET', path: '/v1/inspect/', query: { tag: 'my/base:lat est', follow: true, quiet: false, limit: 3, skip: undefined } })
    expect(await res.json()).toEqual({ ok: true })
    expect(server.requests[0]?.url).toBe('/sandboxes/v1/inspect/?tag=my/base%3Alat%20est&follow=1&limit=3')
    expect(server.requests[0]?.headers['authorization']).toBe('Bearer t0k')
    expect(server.requests[0]?.headers['project']).toBe('p1')
    expect(server.requests[0]?.headers['accept-encoding']).toBe('gzip')
  })

  it('rejects a bad base URL at once', () => {
    expect(() => new HttpClient({ baseUrl: 'not a url' })).toThrow(TypeError)
    expect(() => new HttpClient({ baseUrl: 'ftp://example.com' })).toThrow(TypeError)
  })

  it('delivers gzip chunks incrementally, before the server ends the response', async () => {
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const server = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' })
      const gzip = createGzip()
      gzip.pipe(res)
      gzip.write('first chunk\n')
      gzip.flush(zlib.Z_SYNC_FLUSH, () => {
        void released.then(() => {
          gzip.end('second chunk\n')
        })
      })
    })
    const { http } = client(server.url)
    const res = await http.request({ method: 'GET', path: '/stream', stream: true })
    const iterator = res.body[Symbol.asyncIterator]()
    const first = await iterator.next()
    expect(Buffer.from(first.value as Uint8Array).toString()).toBe('first chunk\n')
    release()
    let rest = ''
    for (;;) {
      const next = await iterator.next()
      if (next.done) break
      rest += Buffer.from(next.value).toString()
    }
    expect(rest).toBe('second chunk\n')
  })

  it('raises TruncatedBodyError when the gzip stream ends before its trailer', async () => {
    const server = await listen((_req, res) => {
      res.writeHead(200, { 'content-encoding': 'gzip' })
      const gzip = createGzip()
      gzip.on('data', (chunk: Buffer) => res.write(chunk))
      gzip.write('partial payload')
      // Flushed output reaches `res` on a later tick; end the response after it, without the trailer.
      gzip.flush(zlib.Z_SYNC_FLUSH, () => setImmediate(() => res.end()))
    })
    const { http } = client(server.url)
    const res = await http.request({ method: 'GET', path: '/archive' })
    const seen: string[] = []
    const read = async (): Promise<void> => {
      for await (const chunk of res.body) seen.push(Buffer.from(chunk).toString())
    }
    await expect(read()).rejects.toBeInstanceOf(TruncatedBodyError)
    expect(seen.join('')).toBe('partial payload')
  })

  it('handles empty gzip-labelled bodies (HEAD, 202)', async () => {
    const server = await listen((req, res) => {
      res.writeHead(req.method === 'HEAD' ? 200 : 202, { 'content-encoding': 'gzip', 'content-length': req.method === 'HEAD' ? '20' : '0' })
      res.end()
    })
    const { http } = client(server.url)
    const head = await http.request({ method: 'HEAD', path: '/f' })
    expect(await head.text()).toBe('')
    const del = await http.request({ method: 'DELETE', path: '/op' })
    expect(del.status).toBe(202)
    expect(await del.text()).toBe('')
  })

  it('honours Retry-After with exactly one sleep per retry, then the ladder', async () => {
    let count = 0
    const server = await listen((_req, res) => {
      count++
      if (count === 1) sendJson(res, 503, { error: 'busy' }, { 'retry-after': '2' })
      else if (count === 2) sendJson(res, 429, { error: 'slow down' })
      else sendJson(res, 200, { ok: count }, { 'retry-after': '30' })
    })
    const { http, sleeps } = client(server.url)
    const res = await http.request({ method: 'GET', path: '/v1/operations/x' })
    expect(await res.json()).toEqual({ ok: 3 })
    expect(sleeps).toEqual([2000, 200])
    expect(server.requests).toHaveLength(3)
  })

  it('gives up after maxAttempts with the last HttpError', async () => {
    const server = await listen((_req, res) => sendJson(res, 500, { error: 'boom', status: 500 }, { 'x-request-id': 'req-9' }))
    const { http, sleeps } = client(server.url, { retry: new RetryPolicy({ maxAttempts: 3 }) })
    const error = await http.request({ method: 'GET', path: '/x', query: { secret: 's3cr3t' } }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HttpError)
    expect((error as HttpError).status).toBe(500)
    expect((error as HttpError).requestId).toBe('req-9')
    expect((error as HttpError).message).toContain('boom')
    expect((error as HttpError).message).not.toContain('s3cr3t')
    expect(sleeps).toEqual([100, 200])
    expect(server.requests).toHaveLength(3)
  })

  it('never retries a 4xx and never leaks the token', async () => {
    const server = await listen((_req, res) => sendJson(res, 401, { error: 'bad token' }))
    const { http, sleeps } = client(server.url, { headers: { Authorization: 'Bearer top-secret' } })
    const error = (await http.request({ method: 'GET', path: '/v1/whoami' }).catch((e: unknown) => e)) as HttpError
    expect(error.status).toBe(401)
    expect(error.message).toContain('bad token')
    expect(error.message).not.toContain('top-secret')
    expect(sleeps).toEqual([])
  })

  it('does not replay a POST on 500', async () => {
    const server = await listen((_req, res) => sendJson(res, 500, { error: 'oops' }))
    const { http, sleeps } = client(server.url)
    await expect(http.request({ method: 'POST', path: '/v1/instances', json: { command: 'x' } })).rejects.toBeInstanceOf(HttpError)
    expect(server.requests).toHaveLength(1)
    expect(sleeps).toEqual([])
  })

  it('replays a POST on 429 and 425, body and all', async () => {
    const bodies: string[] = []
    let count = 0
    const server = await listen((_req, res, body) => {
      bodies.push(body)
      count++
      if (count === 1) sendJson(res, 429, { error: 'throttled' }, { 'retry-after': '0' })
      else if (count === 2) sendJson(res, 425, { error: 'too early' })
      else sendJson(res, 201, { uuid: 'op-1' })
    })
    const { http, sleeps } = client(server.url)
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('abc')
      yield Buffer.from('def')
    }
    const res = await http.request({ method: 'POST', path: '/v1/files', body: () => chunks() })
    expect(await res.json()).toEqual({ uuid: 'op-1' })
    expect(bodies).toEqual(['abcdef', 'abcdef', 'abcdef'])
    expect(sleeps).toEqual([0, 200])
  })

  it('replays a POST when the connection was refused', async () => {
    // Reserve a port, free it, and only start listening during the retry sleep.
    const probe = await listen(() => undefined)
    await cleanups.pop()?.()
    const port = probe.port
    let server: Awaited<ReturnType<typeof listen>> | undefined
    const sleeps: number[] = []
    const dispatcher = new Agent()
    cleanups.push(() => dispatcher.close())
    const http = new HttpClient({
      baseUrl: `http://127.0.0.1:${port}`,
      dispatcher,
      sleep: async (ms) => {
        sleeps.push(ms)
        server ??= await listen((_req, res, body) => sendJson(res, 201, { echoed: body }), port)
      },
    })
    const res = await http.request({ method: 'POST', path: '/v1/instances', json: { command: 'true' } })
    expect(await res.json()).toEqual({ echoed: '{"command":"true"}' })
    expect(sleeps).toEqual([100])
    expect(server?.requests).toHaveLength(1)
  })

  it('reports a refused connection as a TransportError that was not sent', async () => {
    const probe = await listen(() => undefined)
    await cleanups.pop()?.()
    const { http } = client(`http://127.0.0.1:${probe.port}`, { retry: new RetryPolicy({ maxAttempts: 2 }) })
    const error = (await http.request({ method: 'GET', path: '/' }).catch((e: unknown) => e)) as TransportError
    expect(error).toBeInstanceOf(TransportError)
    expect(error.code).toBe('ECONNREFUSED')
    expect(error.requestSent).toBe(false)
  })

  it('retries a GET whose keep-alive socket the server silently dropped, but not a POST', async () => {
    // The first request on each connection is answered; a second one on the same (pooled) socket
    // finds it dead: the server closes it without a word, as a peer that timed the socket out does.
    const served = new WeakSet<object>()
    const server = await listen((req, res) => {
      if (served.has(req.socket)) {
        req.socket.destroy()
        return
      }
      served.add(req.socket)
      sendJson(res, 200, { url: req.url })
    })
    const { http, sleeps } = client(server.url)
    expect(await (await http.request({ method: 'GET', path: '/a' })).json()).toEqual({ url: '/a' })
    expect(await (await http.request({ method: 'GET', path: '/b' })).json()).toEqual({ url: '/b' })
    expect(sleeps).toEqual([100])
    // The dropped attempt reached the server; the retry went out on a fresh connection.
    expect(server.requests.map((r) => r.url)).toEqual(['/a', '/b', '/b'])

    const postError = (await http.request({ method: 'POST', path: '/c', json: {} }).catch((e: unknown) => e)) as TransportError
    expect(postError).toBeInstanceOf(TransportError)
    expect(postError.requestSent).toBe(true)
    expect(sleeps).toEqual([100])
  })

  it('returns accepted statuses instead of throwing and never follows redirects', async () => {
    const server = await listen((req, res) => {
      if (req.url?.startsWith('/v1/inspect/?')) {
        res.writeHead(302, { location: 'abc-123/' })
        res.end()
      } else sendJson(res, 404, { error: 'no such image' })
    })
    const { http } = client(server.url)
    const redirect = await http.request({ method: 'GET', path: '/v1/inspect/', query: { tag: 'a' }, accept: [302] })
    expect(redirect.status).toBe(302)
    expect(redirect.headers.location).toBe('abc-123/')
    await redirect.dump()
    const missing = await http.request({ method: 'GET', path: '/v1/inspect/x/', accept: [404] })
    expect(missing.status).toBe(404)
    expect(await missing.json()).toEqual({ error: 'no such image' })
    expect(server.requests).toHaveLength(2)
  })

  it('does not retry an error status on a stream request (the follower decides)', async () => {
    const server = await listen((_req, res) => sendJson(res, 503, { error: 'later' }, { 'retry-after': '3' }))
    const { http, sleeps } = client(server.url)
    const error = (await http.request({ method: 'GET', path: '/events', stream: true }).catch((e: unknown) => e)) as HttpError
    expect(error.status).toBe(503)
    expect(error.retryAfterMs).toBe(3000)
    expect(sleeps).toEqual([])
  })

  it('aborts an in-flight request at once', async () => {
    let arrived!: () => void
    const gotRequest = new Promise<void>((resolve) => (arrived = resolve))
    const server = await listen(() => arrived())
    const { http } = client(server.url)
    const controller = new AbortController()
    const pending = http.request({ method: 'GET', path: '/hang', signal: controller.signal })
    await gotRequest
    controller.abort(new Error('job cancelled'))
    await expect(pending).rejects.toThrow('job cancelled')
  })

  it('aborts a retry sleep at once', async () => {
    const server = await listen((_req, res) => sendJson(res, 503, { error: 'busy' }, { 'retry-after': '60' }))
    const dispatcher = new Agent()
    cleanups.push(() => dispatcher.close())
    const controller = new AbortController()
    // The real sleep: it must end on abort, not after 60 s.
    const http = new HttpClient({ baseUrl: server.url, dispatcher })
    const pending = http.request({ method: 'GET', path: '/x', signal: controller.signal })
    while (server.requests.length === 0) await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setImmediate(resolve))
    controller.abort(new Error('stop now'))
    await expect(pending).rejects.toThrow('stop now')
  })

  it('surfaces the status even when the error body is broken', async () => {
    const server = await listen((_req, res) => {
      res.writeHead(403, { 'content-encoding': 'gzip', 'content-type': 'application/json' })
      const gzip = createGzip()
      gzip.on('data', (chunk: Buffer) => res.write(chunk))
      gzip.write('{"error": "forb')
      gzip.flush(zlib.Z_SYNC_FLUSH, () => setImmediate(() => res.socket?.destroySoon()))
    })
    const { http } = client(server.url)
    const error = (await http.request({ method: 'GET', path: '/events', stream: true }).catch((e: unknown) => e)) as HttpError
    expect(error).toBeInstanceOf(HttpError)
    expect(error.status).toBe(403)
  })
})

describe('HttpClient early stop', () => {
  it('releases a gzip stream the reader abandons while the server keeps it open', async () => {
    const server = await listen((_req, res) => {
      res.writeHead(200, { 'content-encoding': 'gzip' })
      const gzip = createGzip()
      gzip.on('data', (chunk: Buffer) => res.write(chunk))
      gzip.write('first\n')
      gzip.flush(zlib.Z_SYNC_FLUSH)
      // ...and never ends.
    })
    const { http } = client(server.url)
    const res = await http.request({ method: 'GET', path: '/events', stream: true })
    for await (const chunk of res.body) {
      expect(Buffer.from(chunk).toString()).toBe('first\n')
      break
    }
  })
})
