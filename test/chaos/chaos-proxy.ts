/**
 * The chaos proxy: a raw TCP/HTTP proxy between the action and the ConTree emulator that injects
 * the faults of one run's plan. It reads requests off raw sockets and writes every answer byte by
 * byte itself, so it can answer in the service's place (5xx, 425, 429, with or without
 * Retry-After), drop a connection before answering, hold an answer back, cut an answer at any byte,
 * and, in event streams (event-stream-relay.ts), cut inside a chunk, a gzip block or a character,
 * corrupt or truncate the gzip stream, send sse_error, or stall.
 *
 * It also keeps the log the checks need: every request with its target, what was done to it,
 * whether the service saw it, and which operation a forwarded spawn created.
 */
import { createHash } from 'node:crypto'
import { request as httpRequest, STATUS_CODES, type IncomingMessage } from 'node:http'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { gunzipSync, gzipSync } from 'node:zlib'
import { DeliveryTracker, relayEventStream } from './event-stream-relay.ts'
import { describeRule, isStreamAction, type FaultRule, type Target } from './plan.ts'
import { RequestReader, type RawRequest } from './request-reader.ts'

export interface Exchange {
  index: number
  target: Target | 'other'
  method: string
  path: string
  /** performance.now() when the request's first byte arrived. */
  startedAt: number
  lastEventId?: string
  /** sha256 of the request body, to tell a replay of a request from another request to the same route. */
  bodySha256: string
  /** The plan's rule that struck this request. */
  fault?: FaultRule
  /** What that rule did, step by step. */
  effects: string[]
  /** The rule really broke the exchange (a stream rule may strike and then find nothing to break). */
  faultHappened: boolean
  /** The emulator received the request. */
  forwarded: boolean
  upstreamStatus?: number
  /** A forwarded spawn: the operation the service created (known even when the answer was cut). */
  operationId?: string
  /** How the exchange ended for the action. */
  end: 'pending' | 'answered' | 'dropped' | 'cut' | 'stream-ended' | 'stalled' | 'client-closed' | 'upstream-failed'
  /** Status the action was given in a complete answer. */
  answeredStatus?: number
  /**
   * performance.now() when the proxy began to tell the action how the request went (an answer, a
   * drop, the first bytes of a cut answer): the action cannot act on the outcome before this.
   */
  answeredAt?: number
}

export interface ChaosProxy {
  url: string
  /** performance.now() when the proxy started listening: the zero of the run's clock. */
  startedAt: number
  exchanges: Exchange[]
  /** Rules that never struck. */
  pending(): FaultRule[]
  close(): Promise<void>
}

export interface ChaosProxyOptions {
  upstreamUrl: string
  rules: readonly FaultRule[]
  /** Called as a spawn request arrives, before anything is done with it. */
  onSpawnRequest?: () => void
}

export function classify(method: string, path: string): Target | 'other' {
  if (method === 'GET' && path.startsWith('/v1/inspect/')) return 'inspect'
  if ((method === 'GET' || method === 'HEAD') && /^\/v1\/files\/[^/]+$/.test(path)) return 'file-probe'
  if (method === 'POST' && path === '/v1/files') return 'file-upload'
  if (method === 'POST' && path === '/v1/instances') return 'spawn'
  if (method === 'GET' && /^\/v1\/operations\/[^/]+\/events$/.test(path)) return 'events'
  if (method === 'GET' && /^\/v1\/operations\/[^/]+$/.test(path)) return 'operation'
  if (method === 'DELETE' && /^\/v1\/operations\/[^/]+$/.test(path)) return 'delete'
  return 'other'
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'proxy-connection', 'te', 'upgrade'])

function errorAnswer(status: number, retryAfter: string | undefined): Buffer {
  // Like the service: a JSON error body, gzip'ed (protocol §1.4, §1.5).
  const body = gzipSync(JSON.stringify({ error: `chaos proxy: injected HTTP ${status}`, status }))
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/json',
    'Content-Encoding: gzip',
    `Content-Length: ${body.length}`,
    ...(retryAfter === undefined ? [] : [`Retry-After: ${retryAfter}`]),
    'Connection: keep-alive',
    '',
    '',
  ]
  return Buffer.concat([Buffer.from(head.join('\r\n')), body])
}

function bufferedAnswer(req: RawRequest, res: IncomingMessage, body: Buffer): { bytes: Buffer; keepAlive: boolean } {
  const status = res.statusCode ?? 502
  const lines = [`HTTP/1.1 ${status} ${res.statusMessage ?? STATUS_CODES[status] ?? ''}`]
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    const name = res.rawHeaders[i] as string
    if (HOP_BY_HOP.has(name.toLowerCase())) continue
    lines.push(`${name}: ${res.rawHeaders[i + 1] as string}`)
  }
  const noBody = req.method === 'HEAD' || status === 204 || status === 304
  // A HEAD answer announces the length of the body it does not carry.
  if (req.method === 'HEAD' && res.headers['content-length'] !== undefined) lines.push(`Content-Length: ${res.headers['content-length']}`)
  else if (!noBody) lines.push(`Content-Length: ${body.length}`)
  const keepAlive = !/close/i.test(String(res.headers.connection ?? ''))
  lines.push(`Connection: ${keepAlive ? 'keep-alive' : 'close'}`, '', '')
  return { bytes: Buffer.concat([Buffer.from(lines.join('\r\n')), noBody ? Buffer.alloc(0) : body]), keepAlive }
}

function operationIdOf(res: IncomingMessage, body: Buffer): string | undefined {
  try {
    const plain = /gzip/i.test(String(res.headers['content-encoding'] ?? '')) ? gunzipSync(body) : body
    const uuid = (JSON.parse(plain.toString('utf8')) as { uuid?: unknown }).uuid
    return typeof uuid === 'string' ? uuid : undefined
  } catch {
    return undefined
  }
}

async function readAll(stream: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(part as Buffer)
  return Buffer.concat(parts)
}

function sleepUnlessClosed(ms: number, socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    socket.once('close', done)
    function done(): void {
      clearTimeout(timer)
      socket.off('close', done)
      resolve()
    }
  })
}

export async function startChaosProxy(options: ChaosProxyOptions): Promise<ChaosProxy> {
  const upstream = new URL(options.upstreamUrl)
  const pending = [...options.rules]
  const exchanges: Exchange[] = []
  const delivery = new DeliveryTracker()
  const sockets = new Set<Socket>()
  const upstreamRequests = new Set<{ destroy(): void }>()

  /** The first rule for this target whose moment has come; stream rules wait for a stream. */
  const takeRequestRule = (target: Target | 'other'): FaultRule | undefined => {
    const index = pending.findIndex(
      (rule) =>
        rule.target === target &&
        (rule.atPayloadByte === undefined || rule.atPayloadByte <= delivery.progress),
    )
    const rule = pending[index]
    if (rule === undefined || isStreamAction(rule.action)) return undefined
    pending.splice(index, 1)
    return rule
  }

  const takeStreamRule = (atStart: boolean): FaultRule | undefined => {
    const index = pending.findIndex(
      (rule) =>
        rule.target === 'events' &&
        isStreamAction(rule.action) &&
        (rule.atPayloadByte ?? 0) <= delivery.progress &&
        (atStart || rule.action.kind !== 'corrupt-gzip-header'),
    )
    if (index === -1) return undefined
    return pending.splice(index, 1)[0]
  }

  const forward = (req: RawRequest): { response: Promise<IncomingMessage>; abort: () => void } => {
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value
    headers.host = upstream.host
    headers.connection = 'close'
    if (req.body.length > 0 || ['POST', 'PUT', 'PATCH'].includes(req.method)) headers['content-length'] = String(req.body.length)
    const outgoing = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.target, headers, agent: false })
    const handle = { destroy: () => outgoing.destroy() }
    upstreamRequests.add(handle)
    outgoing.on('close', () => upstreamRequests.delete(handle))
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      outgoing.on('response', resolve)
      outgoing.on('error', reject)
    })
    outgoing.end(req.body)
    return { response, abort: () => outgoing.destroy() }
  }

  /** Handles one request; true when the connection stays open for the next one. */
  const handle = async (req: RawRequest, startedAt: number, socket: Socket): Promise<boolean> => {
    const target = classify(req.method, req.path)
    const bodySha256 = createHash('sha256').update(req.body).digest('hex')
    const exchange: Exchange = { index: exchanges.length, target, method: req.method, path: req.path, startedAt, bodySha256, effects: [], faultHappened: false, forwarded: false, end: 'pending' }
    if (req.headers['last-event-id'] !== undefined) exchange.lastEventId = req.headers['last-event-id']
    exchanges.push(exchange)
    if (target === 'spawn') options.onSpawnRequest?.()
    const rule = takeRequestRule(target)
    if (rule) {
      exchange.fault = rule
      exchange.faultHappened = true
    }
    const action = rule?.action

    if (action?.kind === 'status') {
      exchange.answeredAt = performance.now()
      socket.write(errorAnswer(action.status, action.retryAfter))
      exchange.end = 'answered'
      exchange.answeredStatus = action.status
      return true
    }
    if (action?.kind === 'drop') {
      exchange.answeredAt = performance.now()
      socket.destroy()
      exchange.end = 'dropped'
      return false
    }

    exchange.forwarded = true
    const upstreamCall = forward(req)
    let res: IncomingMessage
    try {
      res = await upstreamCall.response
    } catch {
      exchange.answeredAt = performance.now()
      socket.destroy()
      exchange.end = 'upstream-failed'
      return false
    }
    exchange.upstreamStatus = res.statusCode
    if (socket.destroyed) {
      upstreamCall.abort()
      exchange.end = 'client-closed'
      return false
    }

    if (target === 'events' && res.statusCode === 200 && /text\/event-stream/.test(String(res.headers['content-type']))) {
      exchange.answeredAt = performance.now()
      const end = await relayEventStream(res, upstreamCall.abort, socket, {
        delivery,
        take: (atStart) => {
          const taken = takeStreamRule(atStart)
          if (taken) exchange.fault = taken
          return taken
        },
        effect: (_rule, what, happened) => {
          exchange.effects.push(what)
          if (happened) exchange.faultHappened = true
        },
      })
      exchange.end = end === 'end' ? 'stream-ended' : end === 'stall' ? 'stalled' : end
      if (end === 'end') exchange.answeredStatus = 200
      return false
    }

    let body: Buffer
    try {
      body = await readAll(res)
    } catch {
      exchange.answeredAt = performance.now()
      socket.destroy()
      exchange.end = 'upstream-failed'
      return false
    }
    if (target === 'spawn' && res.statusCode !== undefined && res.statusCode < 300) {
      const id = operationIdOf(res, body)
      if (id !== undefined) exchange.operationId = id
    }
    const answer = bufferedAnswer(req, res, body)
    if (action?.kind === 'delay') {
      await sleepUnlessClosed(action.ms, socket)
      if (socket.destroyed) {
        exchange.end = 'client-closed'
        return false
      }
    }
    if (action?.kind === 'cut-response') {
      const at = Math.min(action.atByte, answer.bytes.length - 1)
      exchange.effects.push(`answer cut after ${at} of its ${answer.bytes.length} bytes`)
      exchange.answeredAt = performance.now()
      socket.write(answer.bytes.subarray(0, at), () => socket.destroy())
      exchange.end = 'cut'
      return false
    }
    exchange.answeredAt = performance.now()
    socket.write(answer.bytes)
    exchange.end = 'answered'
    exchange.answeredStatus = res.statusCode
    if (!answer.keepAlive) socket.end()
    return answer.keepAlive
  }

  const server = createServer((socket) => {
    sockets.add(socket)
    const reader = new RequestReader()
    let busy = false
    let firstByteAt: number | undefined
    socket.on('error', () => undefined)
    socket.on('close', () => sockets.delete(socket))
    const pump = async (): Promise<void> => {
      if (busy) return
      busy = true
      try {
        for (;;) {
          if (socket.destroyed) return
          let req: RawRequest | undefined
          try {
            req = reader.next()
          } catch {
            socket.destroy()
            return
          }
          if (req === undefined) return
          const startedAt = firstByteAt ?? performance.now()
          firstByteAt = reader.hasPartial ? performance.now() : undefined
          if (!(await handle(req, startedAt, socket))) return
        }
      } finally {
        busy = false
      }
    }
    socket.on('data', (data: Buffer) => {
      firstByteAt ??= performance.now()
      reader.feed(data)
      void pump()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const listening = performance.now()

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    startedAt: listening,
    exchanges,
    pending: () => [...pending],
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        for (const call of upstreamRequests) call.destroy()
        server.close(() => resolve())
      }),
  }
}

/** One line of the proxy log; `zero` is the run's start on the performance.now() clock. */
export function describeExchange(exchange: Exchange, zero: number): string {
  const parts = [`#${exchange.index} +${Math.round(exchange.startedAt - zero)} ms ${exchange.method} ${exchange.path}`]
  if (exchange.lastEventId !== undefined) parts.push(`Last-Event-Id ${exchange.lastEventId}`)
  if (exchange.fault) parts.push(`fault ${describeRule(exchange.fault)}`)
  parts.push(exchange.forwarded ? `forwarded (${exchange.upstreamStatus ?? 'no answer'})` : 'not forwarded')
  parts.push(`→ ${exchange.end}${exchange.answeredStatus !== undefined ? ` ${exchange.answeredStatus}` : ''}`)
  if (exchange.operationId) parts.push(`op ${exchange.operationId}`)
  const effects = exchange.effects.length > 0 ? `; ${exchange.effects.join('; ')}` : ''
  return parts.join(', ') + effects
}
