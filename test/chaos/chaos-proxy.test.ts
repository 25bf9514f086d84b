/**
 * The chaos proxy's own parts: the faults it claims to inject are the bytes it really sends. If the
 * proxy lied (a "cut" that is a clean end, a corruption zlib accepts), the chaos test would prove
 * nothing.
 */
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { startChaosProxy, type ChaosProxy } from './chaos-proxy.ts'
import type { FaultRule } from './plan.ts'
import { RequestReader } from './request-reader.ts'
import { endsInsideCharacter, FrameSplitter, insideFirstMultiByteCharacter } from './sse-frames.ts'
import { StreamEncoder } from './stream-encoder.ts'

function dechunk(wire: Buffer): Buffer {
  const parts: Buffer[] = []
  for (let at = 0; ; ) {
    const lineEnd = wire.indexOf('\r\n', at)
    const size = Number.parseInt(wire.toString('latin1', at, lineEnd), 16)
    if (size === 0) return Buffer.concat(parts)
    parts.push(wire.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
}

function zlibCode(run: () => unknown): string | undefined {
  try {
    run()
    return undefined
  } catch (error) {
    return (error as { code?: string }).code
  }
}

describe('StreamEncoder', () => {
  const pieces = ['id: 0\nevent: init\ndata: {}\n\n', 'x'.repeat(70_000), 'é漢😀\n\n']

  it('writes a chunked gzip body that decodes to exactly the pieces', () => {
    const encoder = new StreamEncoder(true)
    const wire = Buffer.concat([encoder.start(), ...pieces.map((piece) => encoder.piece(Buffer.from(piece))), encoder.end()])
    expect(gunzipSync(dechunk(wire)).toString('utf8')).toBe(pieces.join(''))
  })

  it('corrupts and truncates in ways zlib rejects', () => {
    const corrupt = new StreamEncoder(true)
    expect(zlibCode(() => gunzipSync(dechunk(Buffer.concat([corrupt.start(), corrupt.piece(Buffer.from('abc')), corrupt.corruptThenEnd()]))))).toBe('Z_DATA_ERROR')
    const header = new StreamEncoder(true)
    expect(zlibCode(() => gunzipSync(dechunk(Buffer.concat([header.corruptStart(), header.endWithoutTrailer()]))))).toBe('Z_DATA_ERROR')
    const truncated = new StreamEncoder(true)
    expect(zlibCode(() => gunzipSync(dechunk(Buffer.concat([truncated.start(), truncated.piece(Buffer.from('abc')), truncated.endWithoutTrailer()]))))).toBe('Z_BUF_ERROR')
  })
})

describe('RequestReader', () => {
  const wire = Buffer.concat([
    Buffer.from('POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello'),
    Buffer.from('POST /v1/instances?a=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n'),
    Buffer.from('GET /v1/operations/x/events HTTP/1.1\r\nLast-Event-Id: 7\r\n\r\n'),
  ])

  it('reads keep-alive requests however the bytes arrive', () => {
    for (let split = 0; split <= wire.length; split++) {
      const reader = new RequestReader()
      const seen: string[] = []
      for (const part of [wire.subarray(0, split), wire.subarray(split)]) {
        reader.feed(part)
        for (let req = reader.next(); req !== undefined; req = reader.next()) seen.push(`${req.method} ${req.path} ${req.body.toString()} ${req.headers['last-event-id'] ?? ''}`)
      }
      expect(seen).toEqual(['POST /v1/files hello ', 'POST /v1/instances abcde ', 'GET /v1/operations/x/events  7'])
    }
  })
})

describe('SSE frames', () => {
  it('splits frames however the text arrives and decodes the main process output', () => {
    const stdout = Buffer.from('é漢')
    const text = `id: 3\nevent: stdout\ndata: ${JSON.stringify({ id: 3, spid: 1, type: 'stdout', data: { value: stdout.toString('base64'), encoding: 'base64' } })}\n\n: keepalive\n\n`
    const splitter = new FrameSplitter()
    const frames = [...Buffer.from(text)].flatMap((byte) => splitter.push(Buffer.from([byte])))
    expect(frames.map((frame) => frame.id)).toEqual([3, undefined])
    expect(frames[0]?.stdout.equals(stdout)).toBe(true)
  })

  it('tells an output that ends inside a character', () => {
    const text = Buffer.from('a漢😀')
    expect(endsInsideCharacter(text)).toBe(false)
    for (const cut of [2, 3, 5, 6, 7]) expect(endsInsideCharacter(text.subarray(0, cut)), `cut at ${cut}`).toBe(true)
    expect(insideFirstMultiByteCharacter(Buffer.from('ab漢'))).toBe(3)
    expect(insideFirstMultiByteCharacter(Buffer.from('ascii'))).toBe(-1)
  })
})

describe('the proxy', () => {
  let upstream: Server | undefined
  let proxy: ChaosProxy | undefined
  let upstreamRequests = 0
  async function stop(): Promise<void> {
    await proxy?.close()
    const server = upstream
    if (server) await new Promise((resolve) => server.close(resolve))
    proxy = undefined
    upstream = undefined
  }
  afterEach(stop)

  async function start(rules: FaultRule[]): Promise<ChaosProxy> {
    upstreamRequests = 0
    upstream = createServer((req, res) => {
      upstreamRequests++
      if (req.url?.includes('/events')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' })
        res.end(gzipSync('id: 0\nevent: init\ndata: {"id":0}\n\nid: 1\nevent: exit\ndata: {"id":1}\n\n'))
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"ok":true}')
    })
    await new Promise<void>((resolve) => upstream?.listen(0, '127.0.0.1', resolve))
    proxy = await startChaosProxy({ upstreamUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, rules })
    return proxy
  }

  /** Sends one raw request and collects every byte until the proxy closes the connection. */
  function exchange(url: string, request: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = connect(Number(new URL(url).port), '127.0.0.1', () => socket.write(request))
      const parts: Buffer[] = []
      socket.on('data', (part) => parts.push(part))
      socket.on('close', () => resolve(Buffer.concat(parts)))
      socket.on('error', reject)
      // A keep-alive answer leaves the connection open: stop once it is complete.
      socket.on('data', () => {
        const text = Buffer.concat(parts).toString('latin1')
        if (/Content-Length: (\d+)/i.test(text)) {
          const length = Number(/Content-Length: (\d+)/i.exec(text)?.[1])
          if (text.length - text.indexOf('\r\n\r\n') - 4 >= length) socket.end()
        }
      })
    })
  }

  it('answers in the service place with Retry-After, without forwarding', async () => {
    const running = await start([{ target: 'operation', action: { kind: 'status', status: 503, retryAfter: '1' } }])
    const answer = (await exchange(running.url, 'GET /v1/operations/abc HTTP/1.1\r\nHost: x\r\n\r\n')).toString('latin1')
    expect(answer).toMatch(/^HTTP\/1\.1 503 /)
    expect(answer).toMatch(/\r\nRetry-After: 1\r\n/)
    expect(upstreamRequests).toBe(0)
    expect(running.exchanges[0]).toMatchObject({ target: 'operation', forwarded: false, answeredStatus: 503, faultHappened: true })
  })

  it('cuts an event stream at exactly the planned wire byte', async () => {
    const clean = await start([])
    const whole = await exchange(clean.url, 'GET /v1/operations/abc/events HTTP/1.1\r\nHost: x\r\n\r\n')
    const headEnd = whole.indexOf('\r\n\r\n') + 4
    expect(gunzipSync(dechunk(whole.subarray(headEnd))).toString()).toContain('event: exit')
    await stop()
    for (const afterBytes of [0, 1, 7, 20, whole.length - headEnd - 3]) {
      const cutting = await start([{ target: 'events', atPayloadByte: 0, action: { kind: 'cut', afterBytes } }])
      const got = await exchange(cutting.url, 'GET /v1/operations/abc/events HTTP/1.1\r\nHost: x\r\n\r\n')
      expect(got.length - headEnd, `cut after ${afterBytes}`).toBe(afterBytes)
      expect(got.equals(whole.subarray(0, got.length))).toBe(true)
      expect(cutting.exchanges[0]?.end).toBe('cut')
      await stop()
    }
  })
})
