/**
 * The one HTTP client of the action, on undici. It owns URL building, default headers, gzip,
 * timeouts, the retry loop (exactly one sleep per retry) and error typing; callers see either a
 * response with an accepted status or a typed error from errors.ts.
 */
import { Readable } from 'node:stream'
import { EnvHttpProxyAgent, type Dispatcher } from 'undici'
import { decodeBody, mapRequestError, type BodyContext } from './body.ts'
import { HttpError, RequestTimeoutError, TransportError } from './errors.ts'
import { RetryPolicy } from './retry.ts'
import { parseRetryAfter } from './retry-after.ts'
import { realSleep, type Sleep } from './sleep.ts'

export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000
/** Error bodies are read only this far; they are for a one-line message, not for storage. */
const ERROR_BODY_LIMIT = 64 * 1024
const ERROR_DETAIL_CHARS = 500

export type QueryValue = string | number | boolean | undefined
export type RequestBody = string | Uint8Array | (() => AsyncIterable<Uint8Array> | Readable)

export interface HttpRequest {
  method: string
  /** Joined onto the base URL's own path. */
  path: string
  query?: Record<string, QueryValue>
  headers?: Record<string, string>
  /** A factory (rather than a stream) so that a retry can replay the body. */
  body?: RequestBody
  json?: unknown
  signal?: AbortSignal
  timeoutMs?: number
  /** Non-2xx statuses returned instead of thrown (e.g. [404] for probes, [302] for redirects). */
  accept?: number[]
  /** Long-lived response (SSE): only transport failures before any byte are retried. */
  stream?: boolean
  /**
   * For a stream: the longest silence between body chunks before the connection counts as dead
   * (a half-open socket never errors by itself). Default: no limit.
   */
  idleTimeoutMs?: number
  /** false: a single attempt; a policy: replaces the client's own for this request (e.g. a short cancel). */
  retry?: false | RetryPolicy
  /**
   * Once aborted, no further attempt starts, but an attempt in flight is not cut off. For creates: a
   * POST aborted mid-flight may still have reached the service, while a replay after the job was
   * cancelled would start work nobody asked for.
   */
  stopRetrying?: AbortSignal
}

export interface HttpResponse {
  status: number
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string | undefined>
  requestId?: string
  /** Already gunzipped, chunk by chunk as it arrives. Readable once. */
  body: AsyncIterable<Uint8Array>
  json<T>(): Promise<T>
  text(): Promise<string>
  /** The whole body; throws past `limit` bytes. */
  bytes(limit?: number): Promise<Uint8Array>
  /** Discards the body so the connection can be reused (or closed). */
  dump(): Promise<void>
}

export interface HttpClientOptions {
  baseUrl: string
  headers?: Record<string, string>
  retry?: RetryPolicy
  requestTimeoutMs?: number
  connectTimeoutMs?: number
  dispatcher?: Dispatcher
  sleep?: Sleep
}

let sharedDispatcher: Dispatcher | undefined

/** One keep-alive pool for the whole action; it honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY. */
function defaultDispatcher(connectTimeoutMs: number | undefined): Dispatcher {
  if (connectTimeoutMs !== undefined) return new EnvHttpProxyAgent({ connect: { timeout: connectTimeoutMs } })
  sharedDispatcher ??= new EnvHttpProxyAgent({ connect: { timeout: DEFAULT_CONNECT_TIMEOUT_MS } })
  return sharedDispatcher
}

export class HttpClient {
  private readonly origin: string
  private readonly basePath: string
  private readonly headers: Record<string, string>
  private readonly policy: RetryPolicy
  private readonly requestTimeoutMs: number
  private readonly dispatcher: Dispatcher
  private readonly sleep: Sleep

  constructor(opts: HttpClientOptions) {
    const base = new URL(opts.baseUrl)
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError(`base URL must be http or https: ${base.origin}`)
    if (base.username || base.password || base.search || base.hash) throw new TypeError('base URL must not contain credentials, a query or a fragment')
    this.origin = base.origin
    this.basePath = base.pathname.replace(/\/+$/, '')
    this.headers = lowerCaseKeys(opts.headers ?? {})
    this.policy = opts.retry ?? new RetryPolicy()
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    this.dispatcher = opts.dispatcher ?? defaultDispatcher(opts.connectTimeoutMs)
    this.sleep = opts.sleep ?? opts.retry?.sleep ?? realSleep
  }

  async request(req: HttpRequest): Promise<HttpResponse> {
    const method = req.method.toUpperCase()
    const path = this.basePath + (req.path.startsWith('/') ? req.path : `/${req.path}`)
    const url = this.origin + path
    const fullPath = path + encodeQuery(req.query)
    const timeoutMs = req.timeoutMs ?? this.requestTimeoutMs
    const headers: Record<string, string> = { ...this.headers, 'accept-encoding': 'gzip', ...lowerCaseKeys(req.headers ?? {}) }
    let body = req.body
    if (req.json !== undefined) {
      body = JSON.stringify(req.json)
      headers['content-type'] ??= 'application/json'
    }
    const ctx: BodyContext = { method, url, timeoutMs, signal: req.signal }

    for (let attempt = 1; ; attempt++) {
      req.signal?.throwIfAborted()
      const result = await this.attempt(req, ctx, fullPath, headers, body)
      if ('response' in result) return result.response
      const failure = result.failure
      const policy = req.retry === undefined ? this.policy : req.retry
      const decision =
        policy === false || (req.stream === true && failure instanceof HttpError)
          ? ({ retry: false } as const)
          : policy.decide(method, failure instanceof HttpError ? { status: failure.status, retryAfterMs: failure.retryAfterMs } : { error: failure }, attempt)
      if (!decision.retry || req.stopRetrying?.aborted) throw failure
      try {
        await this.sleep(decision.delayMs, req.signal ?? req.stopRetrying)
      } catch (error) {
        // Stopped while waiting to retry: the last failure is what happened to the request.
        if (!req.signal?.aborted && req.stopRetrying?.aborted) throw failure
        throw error
      }
      if (req.stopRetrying?.aborted) throw failure
    }
  }

  private async attempt(
    req: HttpRequest,
    ctx: BodyContext,
    fullPath: string,
    headers: Record<string, string>,
    body: RequestBody | undefined,
  ): Promise<{ response: HttpResponse } | { failure: HttpError | TransportError | RequestTimeoutError }> {
    let res: Dispatcher.ResponseData
    try {
      res = await this.dispatcher.request<null>({
        origin: this.origin,
        path: fullPath,
        method: ctx.method as Dispatcher.HttpMethod,
        headers,
        body: materializeBody(body),
        signal: req.signal,
        headersTimeout: ctx.timeoutMs,
        bodyTimeout: req.stream === true ? (req.idleTimeoutMs ?? 0) : ctx.timeoutMs,
      })
    } catch (error) {
      if (req.signal?.aborted) throw req.signal.reason
      const mapped = mapRequestError(error, ctx)
      if (mapped === undefined) throw error
      return { failure: mapped }
    }
    const response = new UndiciResponse(res, ctx)
    const status = res.statusCode
    if ((status >= 200 && status <= 299) || req.accept?.includes(status)) return { response }
    return { failure: await toHttpError(response, ctx) }
  }
}

/** The one HttpResponse implementation; `bytes` with a limit serves error bodies. */
class UndiciResponse implements HttpResponse {
  readonly status: number
  readonly headers: Record<string, string | undefined>
  readonly requestId?: string
  private consumed = false
  private readonly res: Dispatcher.ResponseData
  private readonly ctx: BodyContext

  constructor(res: Dispatcher.ResponseData, ctx: BodyContext) {
    this.res = res
    this.ctx = ctx
    this.status = res.statusCode
    const headers: Record<string, string | undefined> = {}
    for (const [name, value] of Object.entries(res.headers)) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value
    }
    this.headers = headers
    const requestId = headers['x-request-id'] ?? headers['request-id'] ?? headers['traceparent']
    if (requestId !== undefined) this.requestId = requestId
  }

  get body(): AsyncIterable<Uint8Array> {
    if (this.consumed) throw new Error(`response body of ${this.ctx.url} was already read`)
    this.consumed = true
    const hasBody = this.ctx.method !== 'HEAD' && this.status !== 204 && this.status !== 304
    if (!hasBody) return emptyBody(this.res.body)
    const gzip = /^\s*(x-)?gzip\s*$/i.test(this.headers['content-encoding'] ?? '')
    return decodeBody(this.res.body, gzip, this.ctx)
  }

  async bytes(limit = Number.POSITIVE_INFINITY): Promise<Buffer> {
    const parts: Uint8Array[] = []
    let size = 0
    for await (const chunk of this.body) {
      parts.push(chunk)
      size += chunk.byteLength
      if (size >= limit) break
    }
    return Buffer.concat(parts, size)
  }

  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8')
  }

  async json<T>(): Promise<T> {
    const text = await this.text()
    try {
      return JSON.parse(text) as T
    } catch {
      throw new Error(`${this.ctx.method} ${this.ctx.url} returned a body that is not JSON (HTTP ${this.status})`)
    }
  }

  async dump(): Promise<void> {
    if (this.consumed) return
    this.consumed = true
    await this.res.body.dump({ limit: ERROR_BODY_LIMIT }).catch(() => undefined)
  }
}

async function* emptyBody(raw: Dispatcher.ResponseData['body']): AsyncGenerator<Uint8Array> {
  await raw.dump().catch(() => undefined)
}

async function toHttpError(response: UndiciResponse, ctx: BodyContext): Promise<HttpError> {
  let detail: string | undefined
  try {
    detail = errorDetail((await response.bytes(ERROR_BODY_LIMIT)).toString('utf8').trim())
  } catch {
    // A broken error body (truncated, reset) must not hide the status itself.
    detail = undefined
  }
  return new HttpError({
    status: response.status,
    method: ctx.method,
    url: ctx.url,
    detail,
    requestId: response.requestId,
    retryAfterMs: parseRetryAfter(response.headers['retry-after']),
  })
}

function errorDetail(text: string): string | undefined {
  if (text === '') return undefined
  let detail = text
  try {
    const parsed: unknown = JSON.parse(text)
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed) {
      const error = (parsed as { error: unknown }).error
      detail = typeof error === 'string' ? error : JSON.stringify(error)
    }
  } catch {
    // Not JSON: the raw text is the message.
  }
  detail = detail.replace(/\s+/g, ' ')
  return detail.length > ERROR_DETAIL_CHARS ? `${detail.slice(0, ERROR_DETAIL_CHARS)}…` : detail
}

function materializeBody(body: RequestBody | undefined): string | Uint8Array | Readable | undefined {
  if (typeof body !== 'function') return body
  const produced = body()
  return produced instanceof Readable ? produced : Readable.from(produced, { objectMode: false })
}

/** Percent-encodes values but leaves `/` literal, as the service's own clients do. */
export function encodeQuery(query: Record<string, QueryValue> | undefined): string {
  if (query === undefined) return ''
  const parts: string[] = []
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === false) continue
    const text = value === true ? '1' : String(value)
    parts.push(`${encodeURIComponent(name)}=${encodeURIComponent(text).replace(/%2F/gi, '/')}`)
  }
  return parts.length === 0 ? '' : `?${parts.join('&')}`
}

function lowerCaseKeys(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value
  return out
}
