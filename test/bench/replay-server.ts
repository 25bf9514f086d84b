/**
 * A ConTree-shaped server for the streaming figures that is never the bottleneck: it answers the
 * few routes a run needs (tag lookup, spawn, operation record, events, cancel, whoami) and serves
 * the event stream of one pre-built operation (replay-log.ts) from memory, already compressed.
 * Nothing is executed and nothing is compressed while a stream is timed; a resumed request
 * (Last-Event-Id) is the one case that compresses its frames on the fly.
 *
 * Control routes (`/_replay/...`) load a log and read what the server saw and what it cost.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { gzipSync } from 'node:zlib'
import { PAYLOADS } from './payloads.ts'
import { buildReplayLog, chunkedBlocks, gzipFrames, type ReplayLog, type ReplaySpec } from './replay-log.ts'

export interface StreamCost {
  /** Wall time from the response headers to the last byte handed to the socket. */
  ms: number
  /** CPU this process spent meanwhile (user + system). */
  cpuMs: number
  wireBytes: number
  lastEventId: number | null
}

export interface ReplayServer {
  url: string
  server: Server
}

interface State {
  log: ReplayLog | undefined
  requests: { method: string; path: string; lastEventId: string | null }[]
  streams: StreamCost[]
}

export async function startReplayServer(token: string, port = 0): Promise<ReplayServer> {
  const state: State = { log: undefined, requests: [], streams: [] }
  const server = createServer((req, res) => {
    handle(state, token, req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(error) })
      else res.destroy()
    })
  })
  // Building a log takes seconds; a control connection idle that long must not be closed under the
  // bench just as it sends the next request (Node's default is 5 s).
  server.keepAliveTimeout = 600_000
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const { port: bound } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${bound}`, server }
}

async function handle(state: State, token: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://replay')
  const path = url.pathname
  if (path.startsWith('/_replay/')) return control(state, req, res, path)
  state.requests.push({ method: req.method ?? '', path, lastEventId: headerValue(req, 'last-event-id') })
  if (req.headers.authorization !== `Bearer ${token}`) return sendJson(res, 401, { error: 'invalid token', status: 401 })
  const log = state.log
  if (log === undefined) return sendJson(res, 503, { error: 'no operation loaded', status: 503 })

  const operation = /^\/v1\/operations\/([^/]+)(\/events)?$/.exec(path)
  if (req.method === 'GET' && path === '/v1/whoami') {
    return sendJson(res, 200, { token_uuid: 'replay', token_expiration: null, permissions: {}, operations_stat: {} })
  }
  if (req.method === 'GET' && path === '/v1/inspect/' && url.searchParams.has('tag')) {
    res.writeHead(302, { Location: `${log.imageId}/`, 'Content-Length': '0' })
    return void res.end()
  }
  if (req.method === 'GET' && path === `/v1/inspect/${log.imageId}/`) return sendJson(res, 200, { uuid: log.imageId, tag: 'busybox:latest' })
  if (req.method === 'POST' && path === '/v1/instances') {
    for await (const _ of req) {
      // The spawn request is read and dropped: every spawn starts the loaded operation.
    }
    return sendJson(res, 201, { uuid: log.operationId }, { Location: `/v1/operations/${log.operationId}` })
  }
  if (operation === null || operation[1] !== log.operationId) return sendJson(res, 404, { error: `no route for ${req.method} ${path}`, status: 404 })
  if (req.method === 'DELETE') return sendJson(res, 409, { error: 'operation is not cancellable', status: 409 })
  if (req.method === 'GET' && operation[2] === undefined) return sendJson(res, 200, operationRecord(log))
  if (req.method === 'GET') return streamEvents(state, log, req)
  return sendJson(res, 405, { error: 'method not allowed', status: 405 })
}

async function control(state: State, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  if (req.method === 'POST' && path === '/_replay/load') {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const spec = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ReplaySpec
    if (!(PAYLOADS as readonly string[]).includes(spec.payload)) return sendJson(res, 400, { error: `unknown payload ${spec.payload}` })
    state.log = undefined
    const started = performance.now()
    const log = buildReplayLog(spec, randomUUID(), randomUUID())
    state.log = log
    state.requests = []
    state.streams = []
    const { frames: _frames, wire: _wire, ...summary } = log
    return sendJson(res, 200, { ...summary, frames: log.frames.length, buildMs: Math.round(performance.now() - started) })
  }
  if (req.method === 'GET' && path === '/_replay/stats') return sendJson(res, 200, { requests: state.requests, streams: state.streams })
  if (req.method === 'POST' && path === '/_replay/reset') {
    state.requests = []
    state.streams = []
    return sendJson(res, 200, {})
  }
  return sendJson(res, 404, { error: `no control route ${path}` })
}

const EVENTS_HEAD = Buffer.from(
  [
    'HTTP/1.1 200 OK',
    'Content-Type: text/event-stream',
    'Cache-Control: no-cache',
    'Content-Encoding: gzip',
    'Transfer-Encoding: chunked',
    'Connection: close',
    '',
    '',
  ].join('\r\n'),
)

async function streamEvents(state: State, log: ReplayLog, req: IncomingMessage): Promise<void> {
  const resumeAfter = parseLastEventId(headerValue(req, 'last-event-id'))
  const blocks = resumeAfter === null ? log.wire : chunkedBlocks(gzipFrames(log.frames.slice(resumeAfter + 1)))
  const startedCpu = process.cpuUsage()
  const started = performance.now()
  // The response is written on the socket itself (pre-framed above), which then closes, as the
  // service closes the connection after a stream.
  const socket = req.socket
  let wireBytes = 0
  for (const block of [EVENTS_HEAD, ...blocks]) {
    if (socket.destroyed) break
    wireBytes += block.length
    if (!socket.write(block)) await drainedOrClosed(socket)
  }
  await new Promise<void>((resolve) => socket.end(resolve))
  const cpu = process.cpuUsage(startedCpu)
  state.streams.push({ ms: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000, wireBytes, lastEventId: resumeAfter })
}

function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done)
      socket.off('close', done)
      resolve()
    }
    socket.on('drain', done)
    socket.on('close', done)
  })
}

function operationRecord(log: ReplayLog): Record<string, unknown> {
  return {
    uuid: log.operationId,
    kind: 'instance',
    status: 'SUCCESS',
    error: null,
    duration: 1,
    image_uuid: log.imageId,
    result_image_uuid: null,
    metadata: {
      command: 'replay',
      image: log.imageId,
      result: { state: { exit_code: 0, pid: 42, timed_out: false }, stdout: { value: '', encoding: 'ascii', truncated: true }, stderr: { value: '', encoding: 'ascii' } },
    },
    result: { image: null, tag: null },
  }
}

function parseLastEventId(value: string | null): number | null {
  return value !== null && /^\d+$/.test(value.trim()) ? Number(value.trim()) : null
}

function headerValue(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name]
  return typeof value === 'string' ? value : null
}

/** Buffered bodies are gzipped with a Content-Length, like the real API's. */
function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = gzipSync(JSON.stringify(value))
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': String(body.length), ...headers })
  res.end(body)
}
