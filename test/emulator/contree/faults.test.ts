import { connect } from 'node:net'
import { Client, request } from 'undici'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startContreeEmulator, type ContreeEmulator } from './index.ts'
import { call, gunzipLeniently, parseSse, readStream, spawn, waitTerminal } from './test-client.ts'

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
    // The newer stream faults travel the same way, and their options are checked.
    const newer = [
      { path: '/events$', action: { kind: 'corrupt-gzip', afterEvents: 1 } },
      { path: '/events$', action: { kind: 'stall', afterEvents: 0 } },
      { path: '/events$', action: { kind: 'cut-stream', afterBytes: 10, within: 'utf8-character', partialChunk: true } },
    ]
    expect((await call(base, 'POST', '/_emulator/faults', { body: newer })).json().pending).toHaveLength(3)
    for (const bad of [
      { path: '/events$', action: { kind: 'cut-stream', within: 'middle' } },
      { path: '/events$', action: { kind: 'cut-stream', partialChunk: 'yes' } },
      { path: '/events$', action: { kind: 'corrupt-gzip' } },
      { path: '/events$', action: { kind: 'stall', afterEvents: -1 } },
    ]) {
      const res = await call(base, 'POST', '/_emulator/faults', { body: bad })
      expect(res.status, JSON.stringify(bad)).toBe(400)
    }
    expect((await call(base, 'GET', '/_emulator/faults')).json().pending).toHaveLength(3)
    expect((await call(base, 'DELETE', '/_emulator/faults')).status).toBe(204)
    // Catalogue images are seeded the same way.
    const seeded = await call(base, 'POST', '/_emulator/images', { body: { image: 'distroless', tag: 'over-http/distroless' } })
    expect(seeded.status).toBe(201)
    expect(emu.images().find((i) => i.uuid === seeded.json().uuid)).toMatchObject({ tag: 'over-http/distroless', config: { User: '65532' } })
    expect((await call(base, 'POST', '/_emulator/images', { body: { image: 'distroless', tag: 'over-http/distroless' } })).status).toBe(409)
    expect((await call(base, 'POST', '/_emulator/images', { body: { image: 'ubuntu' } })).status).toBe(400)
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

  it('corrupt-gzip: frames, then bytes that are not deflate data, then a clean chunked end', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'corrupt-gzip', afterEvents: 2 } })
    const stream = await readStream(base, eventsPath())
    expect(stream.error).toBeNull()
    expect(stream.gzipError).toMatch(/invalid block type/)
    expect(ids(stream.text)).toEqual([0, 1])
    expect(parseSse(stream.text).tail).toBe('')
  })

  it('cut-stream partialChunk: the last chunk announces more bytes than arrive before the socket dies', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'cut-stream', afterEvents: 2, partialChunk: true } })
    const raw = await rawChunked(base, eventsPath())
    expect(raw.terminalChunk).toBe(false)
    const last = raw.chunks.at(-1) as { announced: number; received: number }
    expect(last.received).toBeGreaterThan(0)
    expect(last.announced).toBeGreaterThan(last.received)
    expect(raw.chunks.slice(0, -1).every((chunk) => chunk.received === chunk.announced)).toBe(true)
    const text = gunzipLeniently(Buffer.concat(raw.data)).bytes.toString()
    expect(ids(text)).toEqual([0, 1])
    expect(parseSse(text).tail.startsWith('id: 2\n')).toBe(true)
  })

  it('cut-stream afterBytes + partialChunk: exactly that much SSE text, the rest of its chunk never comes', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'cut-stream', afterBytes: 150, partialChunk: true } })
    const raw = await rawChunked(base, eventsPath())
    expect(raw.terminalChunk).toBe(false)
    const last = raw.chunks.at(-1) as { announced: number; received: number }
    expect(last.announced).toBeGreaterThan(last.received)
    expect(gunzipLeniently(Buffer.concat(raw.data)).bytes.length).toBe(150)
  })

  it('cut-stream within utf8-character: the cut splits a multi-byte character of a JSON value', async () => {
    const op = await spawn(base, { command: 'echo héllo', shell: true })
    await waitTerminal(base, op)
    emu.faults.add({ path: '/events$', action: { kind: 'cut-stream', afterEvents: 1, within: 'utf8-character' } })
    const stream = await readStream(base, `/v1/operations/${op}/events`)
    expect(stream.error).not.toBeNull()
    expect(ids(stream.text)).toEqual([0])
    // The last byte is the lead byte of "é" (0xc3 0xa9), inside the spawn event's JSON.
    expect(stream.bytes.at(-1)).toBe(0xc3)
    const tail = stream.bytes.subarray(stream.bytes.lastIndexOf(Buffer.from('\n\n')) + 2).toString('latin1')
    expect(tail).toMatch(/^id: 1\nevent: spawn\ndata: \{.*"echo h\xc3$/)
  })

  it('stall: frames, then silence (no keepalive, no end) until the client gives up', async () => {
    emu.faults.add({ path: '/events$', action: { kind: 'stall', afterEvents: 2 } })
    const res = await request(`${base}${eventsPath()}`, { headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip' } })
    const chunks: Buffer[] = []
    let ended = false
    res.body.on('data', (chunk: Buffer) => chunks.push(chunk))
    res.body.on('end', () => (ended = true))
    res.body.on('error', () => undefined)
    // Ten keepalive intervals of this emulator (50 ms) pass without a byte or an end.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const text = gunzipLeniently(Buffer.concat(chunks)).bytes.toString()
    expect(ids(text)).toEqual([0, 1])
    expect(text).not.toContain(': keepalive')
    expect(parseSse(text).tail).toBe('')
    expect(ended).toBe(false)
    res.body.destroy()
  })

  it('stream faults wait for the events route instead of hitting other requests', async () => {
    emu.faults.add({ path: '.*', action: { kind: 'keepalive-only' } })
    expect((await call(base, 'GET', '/v1/whoami')).status).toBe(200)
    expect(emu.faults.pending()).toHaveLength(1)
    expect((await readStream(base, eventsPath())).text).toBe(': keepalive\n\n'.repeat(3))
  })
})

/** Reads a chunked response over a raw socket, keeping each chunk's announced and received sizes. */
async function rawChunked(base: string, path: string): Promise<{ chunks: Array<{ announced: number; received: number }>; data: Buffer[]; terminalChunk: boolean }> {
  const { hostname, port } = new URL(base)
  const bytes = await new Promise<Buffer>((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const parts: Buffer[] = []
    socket.on('data', (chunk) => parts.push(chunk))
    socket.on('close', () => resolve(Buffer.concat(parts)))
    socket.on('error', reject)
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: text/event-stream\r\nAccept-Encoding: gzip\r\n\r\n`)
  })
  let offset = bytes.indexOf('\r\n\r\n') + 4
  const chunks: Array<{ announced: number; received: number }> = []
  const data: Buffer[] = []
  let terminalChunk = false
  while (offset < bytes.length) {
    const lineEnd = bytes.indexOf('\r\n', offset)
    if (lineEnd < 0) break
    const announced = Number.parseInt(bytes.subarray(offset, lineEnd).toString(), 16)
    if (announced === 0) {
      terminalChunk = true
      break
    }
    const body = bytes.subarray(lineEnd + 2, Math.min(lineEnd + 2 + announced, bytes.length))
    chunks.push({ announced, received: body.length })
    data.push(body)
    offset = lineEnd + 2 + announced + 2
  }
  return { chunks, data, terminalChunk }
}
