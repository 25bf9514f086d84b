// Request/response plumbing shared by the three servers: error bodies in each surface's own shape,
// gzip when the client accepts it, bounded body reading and strict JSON parsing.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { gzipSync } from 'node:zlib'
import { jsonObjectBody } from '../shared/json-object-body.ts'
import type { Surface } from './types.ts'

/** What a handler answers when it does not stream. */
export interface Reply {
  status: number
  /** A JSON value, raw bytes, or nothing. */
  body?: unknown
  headers?: Record<string, string>
}

export interface ErrorDetail {
  parameter?: string
  code?: string
  message?: string
}

/** Thrown by handlers; rendered in the error shape of the surface that answers. */
export class HttpError extends Error {
  readonly status: number
  readonly code: string
  readonly errors: ErrorDetail[]
  constructor(status: number, message: string, opts: { code?: string; errors?: ErrorDetail[] } = {}) {
    super(message)
    this.status = status
    this.code = opts.code ?? defaultCode(status)
    this.errors = opts.errors ?? []
  }
}

/** Bad input naming the offending parameter, as the management API's `errors[]` does. */
export function badRequest(parameter: string, message: string): HttpError {
  return new HttpError(400, message, { code: 'invalid_request', errors: [{ parameter, code: 'invalid', message }] })
}

function defaultCode(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request'
    case 401:
      return 'unauthenticated'
    case 403:
      return 'forbidden'
    case 404:
      return 'not_found'
    case 409:
      return 'conflict'
    case 415:
      return 'unsupported_media_type'
    case 429:
      return 'rate_limited'
    default:
      return status >= 500 ? 'internal_error' : 'error'
  }
}

/**
 * The error body of each surface: Bartender's documented `{code, message, errors}`, Pint's documented
 * `{code: <int>, message}`, and for the undocumented builder `{error}` (the SDKs only print the text).
 */
export function errorBody(surface: Surface, error: HttpError): unknown {
  if (surface === 'api') return { code: error.code, message: error.message, errors: error.errors }
  if (surface === 'agent') return { code: error.status, message: error.message }
  return { error: error.message }
}

function acceptsGzip(req: IncomingMessage): boolean {
  const header = req.headers['accept-encoding']
  if (typeof header !== 'string') return false
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().split(';')
    if (coding?.trim().toLowerCase() !== 'gzip') return false
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    return q === undefined || Number(q.slice(2)) > 0
  })
}

/** Whether a response to this request is gzip'ed: the emulator's option and the client's Accept-Encoding. */
export function wantsGzip(gzipEnabled: boolean, req: IncomingMessage): boolean {
  return gzipEnabled && acceptsGzip(req)
}

export function sendReply(res: ServerResponse, reply: Reply, gzip: boolean): void {
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value)
  const status = reply.status
  if (reply.body === undefined || status === 204 || status === 304 || res.req.method === 'HEAD') {
    if (status !== 204 && status !== 304) res.setHeader('Content-Length', '0')
    res.writeHead(status)
    res.end()
    return
  }
  let payload: Buffer
  if (Buffer.isBuffer(reply.body)) {
    payload = reply.body
  } else {
    payload = Buffer.from(JSON.stringify(reply.body))
    if (!res.hasHeader('Content-Type')) res.setHeader('Content-Type', 'application/json')
  }
  if (gzip) {
    payload = gzipSync(payload)
    res.setHeader('Content-Encoding', 'gzip')
    res.setHeader('Vary', 'Accept-Encoding')
  }
  res.setHeader('Content-Length', String(payload.length))
  res.writeHead(status)
  res.end(payload)
}

/** Reads a whole body up to `limit` bytes; a larger one is refused with 413 (and the rest drained). */
export function readBody(req: IncomingMessage, limit: number, onBytes: (n: number) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    let tooLarge = false
    req.on('data', (chunk: Buffer) => {
      total += chunk.length
      onBytes(total)
      if (total > limit) tooLarge = true
      if (!tooLarge) chunks.push(chunk)
    })
    req.on('end', () => {
      if (tooLarge) reject(new HttpError(413, `request body larger than ${limit} bytes`))
      else resolve(Buffer.concat(chunks, total))
    })
    req.on('error', reject)
  })
}

/** Reads the rest of a body and throws it away, so a refused upload does not look like a broken connection. */
export function drain(req: IncomingMessage, onChunk: (bytes: number) => void = () => undefined): Promise<void> {
  // A request that already ended, or whose connection is gone, has nothing left to read.
  if (req.complete || req.readableEnded || req.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    req.on('data', (chunk: Buffer) => onChunk(chunk.length))
    req.on('end', resolve)
    req.on('error', () => resolve())
    req.on('close', () => resolve())
    req.resume()
  })
}

function isJsonContentType(req: IncomingMessage): boolean {
  const type = req.headers['content-type']
  return typeof type === 'string' && type.split(';')[0]?.trim().toLowerCase() === 'application/json'
}

/**
 * A JSON object body. `optional`: an empty body (of any content type) is `undefined`. A non-empty body must
 * say `Content-Type: application/json` (415 otherwise) and be an object (400).
 */
export function parseJsonObject(req: IncomingMessage, raw: Buffer, optional = false): Record<string, unknown> | undefined {
  if (raw.length === 0) {
    if (optional) return undefined
    throw new HttpError(400, 'request body is required')
  }
  if (!isJsonContentType(req)) throw new HttpError(415, 'Content-Type must be application/json')
  return jsonObjectBody(raw, HttpError)
}

/** `Authorization: Bearer <token>` exactly (scheme case-insensitive, as RFC 6750 allows). */
export function hasBearer(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization
  if (typeof header !== 'string') return false
  const match = /^bearer (.+)$/i.exec(header.trim())
  return match !== null && match[1] === token
}
