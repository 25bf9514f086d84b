import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { HttpError, RequestTimeoutError } from '../../src/http/errors.ts'
import { ContreeApi } from '../../src/providers/contree/api.ts'
import { StreamDecoder } from '../../src/providers/contree/wire.ts'

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: Buffer
}

const closers: Array<() => Promise<void>> = []
afterEach(async () => {
  while (closers.length > 0) await closers.pop()?.()
})

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = gzipSync(JSON.stringify(body))
  res.writeHead(status, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': payload.length, ...headers })
  res.end(payload)
}

async function startServer(): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = []
  let uploads = 0
  const server = createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (chunk: Buffer) => parts.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(parts)
      const url = req.url ?? '/'
      seen.push({ method: req.method ?? '', url, headers: req.headers, body })
      const route = `${req.method} ${url}`
      if (route === 'GET /sandboxes/v1/whoami') return json(res, 200, { token_uuid: 't', token_expiration: null, permissions: { list: true }, operations_stat: {} })
      if (route === 'HEAD /sandboxes/v1/files/aaa') {
        res.writeHead(200, { 'content-encoding': 'gzip' })
        return res.end()
      }
      if (route.startsWith('HEAD /sandboxes/v1/files/')) {
        res.writeHead(404)
        return res.end()
      }
      if (route === 'POST /sandboxes/v1/files') {
        // Throttle the first upload so the body must be replayed.
        if (uploads++ === 0) return json(res, 429, { error: 'slow down' }, { 'retry-after': '0' })
        return json(res, 201, { uuid: 'file-1', sha256: createHash('sha256').update(body).digest('hex'), size: body.length })
      }
      if (route === 'POST /sandboxes/v1/instances') {
        const request = JSON.parse(body.toString()) as { command: string }
        if (request.command === 'no-uuid') return json(res, 201, {}, { location: '/v1/operations/op-from-location' })
        if (request.command === 'nothing') return json(res, 201, {})
        return json(res, 201, { uuid: 'op-spawn', ...request }, { location: '/v1/operations/op-spawn' })
      }
      if (route === 'POST /sandboxes/v1/images/import') return json(res, 201, { uuid: 'op-import' })
      if (route === 'GET /sandboxes/v1/operations/a%2Fb') return json(res, 200, { uuid: 'a/b', status: 'EXECUTING' })
      if (route === 'DELETE /sandboxes/v1/operations/running') {
        res.writeHead(202)
        return res.end()
      }
      if (route === 'DELETE /sandboxes/v1/operations/finished') return json(res, 409, { error: 'operation is not cancellable' })
      if (route === 'DELETE /sandboxes/v1/operations/slow') return
      if (route === 'GET /sandboxes/v1/inspect/?tag=my/base%3Alatest') {
        res.writeHead(302, { location: 'img-uuid-1/' })
        return res.end()
      }
      if (route === 'GET /sandboxes/v1/inspect/img-uuid-1/') return json(res, 200, { uuid: 'img-uuid-1', tag: 'my/base:latest', created_at: 'x', operation_uuid: null })
      if (route === 'PATCH /sandboxes/v1/images/img-uuid-1/tag') return json(res, 200, { uuid: 'img-uuid-1', tag: (JSON.parse(body.toString()) as { tag: string }).tag })
      json(res, 404, { error: `no route for ${route}` })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/sandboxes/`, seen }
}

const noSleep = async (): Promise<void> => undefined

describe('ContreeApi', () => {
  it('sends Authorization, Project and User-Agent; omits Project and Authorization when unset', async () => {
    const { url, seen } = await startServer()
    const api = new ContreeApi({ baseUrl: url, token: 'tok-123', project: 'proj-1', userAgent: 'sandbox-action/0.1 test', sleep: noSleep })
    expect((await api.whoami()).permissions.list).toBe(true)
    expect(seen[0]?.headers).toMatchObject({ authorization: 'Bearer tok-123', project: 'proj-1', 'user-agent': 'sandbox-action/0.1 test', 'accept-encoding': 'gzip' })
    const anonymous = new ContreeApi({ baseUrl: url, userAgent: 'ua', sleep: noSleep })
    await anonymous.whoami()
    expect(seen[1]?.headers.authorization).toBeUndefined()
    expect(seen[1]?.headers.project).toBeUndefined()
  })

  it('probes files with HEAD and uploads raw bytes, replaying the body after a 429', async () => {
    const { url, seen } = await startServer()
    const api = new ContreeApi({ baseUrl: url, userAgent: 'ua', sleep: noSleep })
    expect(await api.fileExists('aaa')).toBe(true)
    expect(await api.fileExists('bbb')).toBe(false)
    const content = Buffer.from('hello file\n')
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield content.subarray(0, 3)
      yield content.subarray(3)
    }
    const record = await api.uploadFile(() => chunks(), content.length)
    expect(record).toEqual({ uuid: 'file-1', sha256: createHash('sha256').update(content).digest('hex'), size: content.length })
    const posts = seen.filter((s) => s.method === 'POST')
    expect(posts.map((p) => p.body.toString())).toEqual(['hello file\n', 'hello file\n'])
    expect(posts[1]?.headers['content-type']).toBe('application/octet-stream')
  })

  it('returns operation ids from spawn and import, falling back to Location', async () => {
    const { url, seen } = await startServer()
    const api = new ContreeApi({ baseUrl: url, userAgent: 'ua', sleep: noSleep })
    expect(await api.spawn({ command: 'echo hi', image: 'tag:busybox:latest', shell: true })).toBe('op-spawn')
    expect(JSON.parse(seen[0]?.body.toString() ?? '')).toEqual({ command: 'echo hi', image: 'tag:busybox:latest', shell: true })
    expect(seen[0]?.headers['content-type']).toBe('application/json')
    expect(await api.spawn({ command: 'no-uuid', image: 'i' })).toBe('op-from-location')
    await expect(api.spawn({ command: 'nothing', image: 'i' })).rejects.toThrow(/no operation uuid/)
    expect(await api.importImage({ registry: { url: 'docker://docker.io/library/busybox:latest' }, tag: 'busybox:latest' })).toBe('op-import')
  })

  it('percent-encodes path parameters fully', async () => {
    const { url } = await startServer()
    const api = new ContreeApi({ baseUrl: url, userAgent: 'ua', sleep: noSleep })
    expect(await api.getOperation('a/b')).toEqual({ uuid: 'a/b', status: 'EXECUTING' })
  })

  it('maps cancel answers and bounds a cancel by its timeout', async () => {
    const { url, seen } = await startServer()
    const api = new ContreeApi({ baseUrl: url, userAgent: 'ua', sleep: noSleep })
    expect(await api.cancelOperation('running', { timeoutMs: 5000 })).toBe('cancelled')
    expect(await api.cancelOperation('finished', { timeoutMs: 5000 })).toBe('not-cancellable')
    expect(await api.cancelOperation('unknown', { timeoutMs: 5000 })).toBe('not-found')
    await expect(api.cancelOperation('slow', { timeoutMs: 100 })).rejects.toBeInstanceOf(RequestTimeoutError)
    expect(seen.filter((s) => s.url.endsWith('/slow')).length).toBeGreaterThanOrEqual(1)
  })

  it('resolves tags through the 302 without following it, and reads and tags images', async () => {
    const { url, seen } = await startServer()
    const api = new ContreeApi({ baseUrl: url, userAgent: 'ua', sleep: noSleep })
    expect(await api.findImageByTag('my/base:latest')).toBe('img-uuid-1')
    expect(seen).toHaveLength(1)
    expect(await api.findImageByTag('missing:tag')).toBeNull()
    expect(await api.getImage('img-uuid-1')).toMatchObject({ uuid: 'img-uuid-1', tag: 'my/base:latest' })
    expect(await api.getImage('gone')).toBeNull()
    expect(await api.tagImage('img-uuid-1', 'new:tag')).toMatchObject({ tag: 'new:tag' })
    await expect(api.tagImage('nope', 'x')).rejects.toBeInstanceOf(HttpError)
  })

  it('opens the event stream with follow, Accept and Last-Event-Id', async () => {
    const { url, seen } = await startServer()
    const api = new ContreeApi({ baseUrl: url, userAgent: 'ua', sleep: noSleep })
    await expect(api.openEvents('op/1', { follow: true, lastEventId: 41 })).rejects.toMatchObject({ status: 404 })
    expect(seen[0]?.url).toBe('/sandboxes/v1/operations/op%2F1/events?follow=1')
    expect(seen[0]?.headers).toMatchObject({ accept: 'text/event-stream', 'last-event-id': '41' })
    await expect(api.openEvents('op', { follow: false })).rejects.toMatchObject({ status: 404 })
    expect(seen[1]?.url).toBe('/sandboxes/v1/operations/op/events')
    expect(seen[1]?.headers['last-event-id']).toBeUndefined()
  })
})

describe('StreamDecoder', () => {
  it('decodes ascii and base64, and tolerates empty values', () => {
    const decoder = new StreamDecoder()
    expect(decoder.decode({ value: 'hi\tthere\r\n', encoding: 'ascii' }).toString()).toBe('hi\tthere\r\n')
    expect([...decoder.decode({ value: Buffer.from([0, 200, 255]).toString('base64'), encoding: 'base64' })]).toEqual([0, 200, 255])
    expect(decoder.decode({ value: '', encoding: 'base64' })).toHaveLength(0)
    expect(decoder.decode({ value: 'héllo', encoding: 'ascii' }).toString()).toBe('héllo')
  })

  it('decodes into one reused buffer exactly what Buffer.from does, for values of any size and kind', () => {
    const decoder = new StreamDecoder()
    const reference = (repr: { value: string; encoding: string }): Buffer => Buffer.from(repr.value, repr.encoding === 'base64' ? 'base64' : 'utf8')
    const random = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, k) => (k * 7919 + n) % 256))
    const values = [
      { value: 'hi\tthere\r\n', encoding: 'ascii' },
      { value: random(3).toString('base64'), encoding: 'base64' },
      { value: '', encoding: 'base64' },
      // Larger than the first buffer, then smaller again: the buffer grows and is reused.
      { value: random(200_000).toString('base64'), encoding: 'base64' },
      { value: '日本語😀'.repeat(30_000), encoding: 'ascii' },
      { value: random(5).toString('base64').replace(/=+$/, ''), encoding: 'base64' },
      { value: 'héllo', encoding: 'ascii' },
      { value: `${random(64).toString('base64')}\n`, encoding: 'base64' },
    ]
    for (const repr of values) expect(Buffer.from(decoder.decode(repr)).equals(reference(repr)), JSON.stringify(repr).slice(0, 60)).toBe(true)
  })
})
