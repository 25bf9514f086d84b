/**
 * Response body decoding: incremental gunzip plus translation of low-level stream failures into
 * the typed errors of errors.ts, so readers (SSE follower, JSON) can tell a truncated payload from
 * a dropped connection.
 */
import { Readable, pipeline } from 'node:stream'
import { constants as zlibConstants, createGunzip } from 'node:zlib'
import { CorruptBodyError, RequestTimeoutError, TransportError, TruncatedBodyError } from './errors.ts'

export interface BodyContext {
  method: string
  url: string
  timeoutMs: number
  signal?: AbortSignal | undefined
}

/** Decodes (when gzip) and maps errors; yields each piece as soon as it can be decoded. */
export async function* decodeBody(raw: AsyncIterable<Uint8Array>, gzip: boolean, ctx: BodyContext): AsyncGenerator<Uint8Array> {
  try {
    if (gzip) yield* gunzipIncrementally(raw)
    else yield* raw
  } catch (error) {
    throw mapBodyError(error, ctx)
  }
}

async function* gunzipIncrementally(raw: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const iterator = raw[Symbol.asyncIterator]()
  let first = await iterator.next()
  while (!first.done && first.value.byteLength === 0) first = await iterator.next()
  // Empty bodies labelled gzip (HEAD, 202, 204) are not a gzip stream at all.
  if (first.done) return
  // Sync-flush each write so every chunk the server flushed is decoded on arrival; finish with
  // Z_FINISH so a stream that stops before its trailer fails loudly instead of ending short.
  const gunzip = createGunzip({ flush: zlibConstants.Z_SYNC_FLUSH, finishFlush: zlibConstants.Z_FINISH })
  const source = Readable.from(prepend(first.value, iterator), { objectMode: false })
  // Errors of either side destroy the gunzip stream, and its iterator rethrows them below.
  pipeline(source, gunzip, () => {})
  yield* gunzip as AsyncIterable<Uint8Array>
}

async function* prepend(head: Uint8Array, rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield head
    for (;;) {
      const next = await rest.next()
      if (next.done) return
      yield next.value
    }
  } finally {
    // Releases the socket when the reader stops early.
    await rest.return?.()
  }
}

const CONNECT_PHASE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
])

export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') return code
  // Happy-eyeballs connects fail with an AggregateError whose members carry the code.
  const inner = (error as { errors?: unknown }).errors
  if (Array.isArray(inner)) return errorCode(inner[0])
  const cause = (error as { cause?: unknown }).cause
  return cause === undefined || cause === error ? undefined : errorCode(cause)
}

/** True when the error proves the request never left this process. */
export function isConnectPhaseError(code: string | undefined): boolean {
  return code !== undefined && CONNECT_PHASE_CODES.has(code)
}

/**
 * Maps an error thrown while sending or waiting for a response. Returns undefined for errors that
 * are not about the network (programmer errors), which the caller rethrows unchanged.
 */
export function mapRequestError(error: unknown, ctx: BodyContext): TransportError | RequestTimeoutError | undefined {
  const code = errorCode(error)
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new RequestTimeoutError({ ...ctx, phase: 'headers', cause: error })
  if (code === 'UND_ERR_BODY_TIMEOUT') return new RequestTimeoutError({ ...ctx, phase: 'body', cause: error })
  if (code === undefined || code === 'UND_ERR_INVALID_ARG' || code === 'ERR_INVALID_URL' || code === 'UND_ERR_ABORTED') return undefined
  if (!code.startsWith('E') && !code.startsWith('UND_ERR') && !code.startsWith('HPE_')) return undefined
  return new TransportError({
    method: ctx.method,
    url: ctx.url,
    code,
    requestSent: !isConnectPhaseError(code),
    cause: error,
    message: isConnectPhaseError(code) ? 'could not connect' : 'connection failed',
  })
}

function mapBodyError(error: unknown, ctx: BodyContext): unknown {
  if (ctx.signal?.aborted) return ctx.signal.reason
  const code = errorCode(error)
  if (code === 'Z_BUF_ERROR') return new TruncatedBodyError(ctx.url, error)
  if (code === 'Z_DATA_ERROR' || code === 'Z_STREAM_ERROR' || code === 'Z_NEED_DICT') return new CorruptBodyError(ctx.url, error)
  const mapped = mapRequestError(error, ctx)
  if (mapped instanceof TransportError) {
    return new TransportError({ method: ctx.method, url: ctx.url, code: mapped.code, requestSent: true, cause: error, message: 'connection lost while reading the response' })
  }
  return mapped ?? error
}
