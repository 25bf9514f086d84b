import { Client } from 'undici'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startContreeEmulator, type ContreeEmulator } from './index.ts'
import { call, parseSse, readStream, spawn, waitTerminal } from './test-client.ts'

let emu: ContreeEmulator
let base: string
/** A finished operation with a log of init, spawn, 2× stdout, exit, completion (ids 0..5). */
let finished: string

beforeAll(async () => {
  emu = await startContreeEmulator({ keepaliveMs: 50, log: () => undefined })
  base = emu.url
  finished = await spawn(base, { command: 'echo one; sleep 0.05; echo two', shell: true })
  await waitTerminal(base, finished)
})
afterAll(async () => {
  await emu.close()
})
beforeEach(() => emu.reset())

const eventsPath = () => `/v1/operations/${finished}/events`
const ids = (text: string) => parseSse(text).frames.map((frame) => frame.id)

describe('ConTree emulator: request faults', () => {
  it('answers injected statuses in order, with Retry-After, and records them', async () => {
    emu.faults.add(
      { method: 'GET', path: '^/v1/whoami$', times: 2, action: { kind: 'status', status: 500 } },
      { path: 'whoami', action: { kind: 'status', status: 425, retryAfter: '0', body: { error: 'too early' } } },
    )
    const first = await call(base, 'GET', '/v1/whoami')
    expect(first.status).toBe(500)
    expect(first.json()).toEqual({ error: 'injected fault: status 500', status: 500 })
    expect((await call(base, 'GET', '/v1/whoami')).status).toBe(500)
    const third = await call(base, 'GET', '/v1/whoami')
    expect(third.status).toBe(425)
    expect(third.headers['retry-after']).toBe('0')
    expect(third.json()).toEqual({ error: 'too early' })
    expect((await call(base, 'GET', '/v1/whoami')).status).toBe(200)
    expect(emu.requests.map((r) => r.fault)).toEqual(['status', 'status', 'status', undefined])
    expect(emu.faults.applied().map((a) => a.requestIndex)).toEqual([0, 1, 2])
    expect(emu.faults.pending()).toEqual([])
  })

  it('only matches the given method', async () => {
    emu.faults.add({ method: 'POST', path: '^/v1/instances$', action: { kind: 'status', status: 429 } })
    expect((await call(base, 'GET', '/v1/whoami')).status).toBe(200)
    const res = await call(base, 'POST', '/v1/instances', { body: { image: 'tag:busybox:latest', command: 'true' } })
    expect(res.status).toBe(429)
    expect(emu.requests.at(-1)?.bodyBytes).toBeGreaterThan(0)
  })

  it('drops the connection before responding', async () => {
    emu.faults.add({ path: '^/v1/whoami$', action: { kind: 'drop-before-response' } })
    await expect(call(base, 'GET', '/v1/whoami')).rejects.toThrow()
    expect((await call(base, 'GET', '/v1/whoami')).status).toBe(200)
    expect(emu.requests[0]?.fault).toBe('drop-before-response')
  })

  it('drops the keep-alive socket after a normal response: the next request on it fails', async () => {
    const client = new Client(base, { pipelining: 1 })
    try {
      emu.faults.add({ path: '^/v1/whoami$', action: { kind: 'drop-after-response' } })
      expect((await call(base, 'GET', '/v1/whoami', { dispatcher: client })).status).toBe(200)
      await expect(call(base, 'GET', '/v1/whoami', { dispatcher: client })).rejects.toThrow()
      expect(emu.requests.map((r) => r.fault)).toEqual(['drop-after-response', 'drop-after-response'])
      expect((await call(base, 'GET', '/v1/whoami', { dispatcher: client })).status).toBe(200)
    } finally {
      await client.close()
    }
  })

  it('hangs without answering until the client gives up', async () => {
    emu.faults.add({ path: '^/v1/whoami$', action: { kind: 'hang' } })
    await expect(call(base, 'GET', '/v1/whoami', { signal: AbortSignal.timeout(200) })).rejects.toThrow()
    expect(emu.requests[0]?.fault).toBe('hang')
  })

  it('is driven over HTTP by other processes', async () => {
    const add = await call(base, 'POST', '/_emulator/faults', {
      body: [{ path: '^/v1/whoami$', times: 1, action: { kind: 'status', status: 503 } }],
    })
    expect(add.status).toBe(201)
    expect((await call(base, 'POST', '/_emulator/faults', { body: { path: '(' } })).status).toBe(400)
    expect((await call(base, 'GET', '/v1/whoami')).status).toBe(503)
    const requests = (await call(base, 'GET', '/_emulator/requests')).json()
    expect(requests).toHaveLength(1)
    expect(requests[0]).toMatchObject({ method: 'GET', path: '/v1/whoami', fault: 'status' })
    const faults = (await call(base, 'GET', '/_emulator/faults')).json()
    expect(faults.applied[0]).toMatchObject({ requestIndex: 0, action: { kind: 'status', status: 503 } })
    await call(base, 'POST', '/_emulator/faults', { body: { path: 'whoami', action: { kind: 'status', status: 500 } } })
    expect((await call(base, 'DELETE', '/_emulator/faults')).status).toBe(204)
    expect((await call(base, 'GET', '/v1/whoami')).status).toBe(200)
  })
})

describe('ConTree emulator: stream faults', () => {
  it('serves the undisturbed log for comparison', async () => {
    const stream = await readStream(base, eventsPath())
    expect(stream.error).toBeNull()
    expect(stream.gzipComplete).toBe(true)
    expect(ids(stream.text)).toEqual([0, 1, 2, 3, 4, 5])
  })

  it('cut-stream afterEvents: cuts inside the next frame', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'cut-stream', afterEvents: 2 } })
    const stream = await readStream(base, eventsPath())
    expect(stream.error).not.toBeNull()
    const { tail } = parseSse(stream.text)
    expect(ids(stream.text)).toEqual([0, 1])
    expect(tail.length).toBeGreaterThan(0)
    expect(tail.startsWith('id: 2\n')).toBe(true)
    expect((await readStream(base, eventsPath())).error).toBeNull()
  })

  it('cut-stream afterBytes: cuts at that many bytes of SSE text', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'cut-stream', afterBytes: 100 } })
    const stream = await readStream(base, eventsPath())
    expect(stream.error).not.toBeNull()
    expect(Buffer.byteLength(stream.text)).toBe(100)
  })

  it('cut-stream on a follow stream waits for the next frame before cutting', async () => {
    const op = await spawn(base, { command: 'echo x; sleep 0.2; echo y', shell: true })
    emu.faults.add({ path: '/events$', action: { kind: 'cut-stream', afterEvents: 3 } })
    const stream = await readStream(base, `/v1/operations/${op}/events?follow=1`)
    expect(stream.error).not.toBeNull()
    expect(ids(stream.text)).toEqual([0, 1, 2])
    expect(parseSse(stream.text).tail.startsWith('id: 3')).toBe(true)
  })

  it('sse-error: frames, the error comment and an sse_error event, then a clean end', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'sse-error', afterEvents: 2 } })
    const stream = await readStream(base, eventsPath(), { 'last-event-id': '1' })
    expect(stream.error).toBeNull()
    expect(stream.gzipComplete).toBe(true)
    const { frames, comments } = parseSse(stream.text)
    expect(frames.map((f) => f.id)).toEqual([2, 3, null])
    expect(frames[2]).toEqual({ id: null, event: 'sse_error', data: 'upstream event source closed unexpectedly' })
    expect(comments).toContain(': stream ended with error, retry since last event id')
  })

  it('broken-chunking: a malformed chunk instead of the terminal chunk', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'broken-chunking', afterEvents: 1 } })
    const stream = await readStream(base, eventsPath())
    expect(stream.error).not.toBeNull()
    expect(ids(stream.text)).toEqual([0])
  })

  it('truncated-gzip: clean chunked end, but the gzip member has no trailer', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'truncated-gzip', afterEvents: 3 } })
    const stream = await readStream(base, eventsPath())
    expect(stream.error).toBeNull()
    expect(stream.gzipComplete).toBe(false)
    expect(ids(stream.text)).toEqual([0, 1, 2])
  })

  it('keepalive-only: comments then EOF, no events', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'keepalive-only', count: 2 } })
    const stream = await readStream(base, eventsPath())
    expect(stream.error).toBeNull()
    expect(stream.text).toBe(': keepalive\n\n: keepalive\n\n')
  })

  it('slow-drip: every frame still arrives, one write per frame', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'slow-drip', delayMs: 5 } })
    const stream = await readStream(base, eventsPath())
    expect(ids(stream.text)).toEqual([0, 1, 2, 3, 4, 5])
    expect(stream.rawChunks.length).toBeGreaterThanOrEqual(6)
  })

  it('events-unavailable: the events route answers 404 as if it did not exist', async () => {
    emu.faults.add({ path: '/events$', times: 2, action: { kind: 'events-unavailable' } })
    for (let i = 0; i < 2; i++) {
      const res = await call(base, 'GET', eventsPath())
      expect(res.status).toBe(404)
      expect(res.json()).toEqual({ error: `no route for GET ${eventsPath()}`, status: 404 })
    }
    expect((await call(base, 'GET', eventsPath())).status).toBe(200)
  })

  it('stream faults wait for the events route instead of hitting other requests', async () => {
    emu.faults.add({ path: '.*', action: { kind: 'keepalive-only' } })
    expect((await call(base, 'GET', '/v1/whoami')).status).toBe(200)
    expect(emu.faults.pending()).toHaveLength(1)
    expect((await readStream(base, eventsPath())).text).toBe(': keepalive\n\n'.repeat(3))
  })
})
