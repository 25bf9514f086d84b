// Response helpers: every buffered body is gzip'ed like the real API (Content-Encoding + Content-Length).
import { createReadStream } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { constants as zlibConstants, createGzip, gzipSync } from 'node:zlib'
import { jsonObjectBody } from '../shared/json-object-body.ts'

export interface ResponseContext {
  gzip: boolean
}

export function readBody(req: IncomingMessage, onBytes: (n: number) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      total += chunk.length
      onBytes(total)
    })
    req.on('end', () => resolve(Buffer.concat(chunks, total)))
    req.on('error', reject)
  })
}

export function sendBuffered(
  ctx: ResponseContext,
  res: ServerResponse,
  status: number,
  body: Buffer | null,
  headers: Record<string, string> = {},
): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
  if (body === null || status === 204 || status === 304 || res.req.method === 'HEAD') {
    res.writeHead(status)
    res.end()
    return
  }
  const payload = ctx.gzip ? gzipSync(body) : body
  if (ctx.gzip) res.setHeader('Content-Encoding', 'gzip')
  res.setHeader('Content-Length', String(payload.length))
  res.writeHead(status)
  res.end(payload)
}

export function sendJson(
  ctx: ResponseContext,
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  sendBuffered(ctx, res, status, Buffer.from(JSON.stringify(value)), {
    'Content-Type': 'application/json',
    ...headers,
  })
}

/** The protocol's Error body: `{error, status}`. */
export function sendError(
  ctx: ResponseContext,
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(ctx, res, status, { error: message, status }, headers)
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
  // An explicit empty body keeps 202/302 off chunked framing; 204 must carry no length at all.
  if (status !== 204 && status !== 304 && res.req.method !== 'HEAD') res.setHeader('Content-Length', '0')
  res.writeHead(status)
  res.end()
}

/** Bytes per chunk of a streamed file (the stub sends archives in 1 KiB chunks; bigger is kinder to CPUs). */
const STREAM_CHUNK_BYTES = 16 * 1024

/**
 * Streams a file as a chunked body, gzip'ed with a sync flush per chunk like every stream of the
 * real API, then closes the connection.
 */
export async function streamFile(ctx: ResponseContext, res: ServerResponse, file: string, contentType: string): Promise<void> {
  res.setHeader('Content-Type', contentType)
  res.setHeader('Cache-Control', 'no-cache')
  res.setHeader('Connection', 'close')
  if (ctx.gzip) res.setHeader('Content-Encoding', 'gzip')
  res.writeHead(200)
  const source = createReadStream(file, { highWaterMark: STREAM_CHUNK_BYTES })
  if (ctx.gzip) await pipeline(source, createGzip({ flush: zlibConstants.Z_SYNC_FLUSH }), res)
  else await pipeline(source, res)
}

/** Thrown by handlers to answer with an Error body. */
export class HttpError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

export function parseJsonBody(body: Buffer): Record<string, unknown> {
  return jsonObjectBody(body, HttpError)
}
