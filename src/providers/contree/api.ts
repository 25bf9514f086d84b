/**
 * Typed ConTree v1 API client: one method per endpoint the action uses, all through the shared
 * HttpClient (one retry policy, gzip, typed errors). No waiting logic here; see follow.ts.
 */
import { HttpClient, type HttpResponse } from '../../http/client.ts'
import { RequestTimeoutError } from '../../http/errors.ts'
import { RetryPolicy } from '../../http/retry.ts'
import type { Sleep } from '../../http/sleep.ts'
import type { FileRecord, Image, ImageImportRequest, OperationResponse, SpawnRequest, SpawnResponse, WhoAmI } from './wire.ts'

export interface ContreeApiOptions {
  baseUrl: string
  token?: string
  project?: string
  userAgent: string
  /** Injected client (tests, shared pool); when given, the auth options above are not applied to it. */
  http?: HttpClient
  retry?: RetryPolicy
  sleep?: Sleep
  /**
   * Silence on an event stream after which it is treated as broken and resumed. The service sends
   * keepalive comments on idle streams, so this much silence means the connection is dead.
   */
  eventsIdleTimeoutMs?: number
}

/** Well above the service's keepalive interval. */
export const DEFAULT_EVENTS_IDLE_TIMEOUT_MS = 90_000
/** How long an events request may wait for its response headers before it is retried. */
const EVENTS_HEADERS_TIMEOUT_MS = 60_000

export type CancelResult = 'cancelled' | 'not-cancellable' | 'not-found'

export interface OpenEventsOptions {
  follow: boolean
  lastEventId?: number
  signal?: AbortSignal
}

/** Cancels run inside the SIGINT grace window: a couple of quick tries, never the full ladder. */
const CANCEL_RETRY_DELAYS_MS = [200, 500]
const CANCEL_MAX_ATTEMPTS = 3

export class ContreeApi {
  readonly http: HttpClient
  readonly retry: RetryPolicy
  private readonly sleep: Sleep | undefined
  private readonly eventsIdleTimeoutMs: number

  constructor(opts: ContreeApiOptions) {
    this.retry = opts.retry ?? new RetryPolicy(opts.sleep ? { sleep: opts.sleep } : {})
    this.sleep = opts.sleep
    this.eventsIdleTimeoutMs = opts.eventsIdleTimeoutMs ?? DEFAULT_EVENTS_IDLE_TIMEOUT_MS
    const headers: Record<string, string> = { 'User-Agent': opts.userAgent }
    // Public endpoints work without a token; an empty Authorization header would be rejected.
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`
    if (opts.project) headers.Project = opts.project
    this.http =
      opts.http ??
      new HttpClient({ baseUrl: opts.baseUrl, headers, retry: this.retry, ...(opts.sleep ? { sleep: opts.sleep } : {}) })
  }

  async whoami(signal?: AbortSignal): Promise<WhoAmI> {
    const res = await this.http.request({ method: 'GET', path: '/v1/whoami', ...withSignal(signal) })
    return res.json<WhoAmI>()
  }

  /** HEAD probe: 2xx → true, 404 → false, anything else → error. */
  async fileExists(sha256: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.http.request({ method: 'HEAD', path: `/v1/files/${seg(sha256)}`, accept: [404], ...withSignal(signal) })
    await res.dump()
    return res.status !== 404
  }

  /** The stored file with this content, or null: the dedup probe that also yields the file's uuid. */
  async getFile(sha256: string, signal?: AbortSignal): Promise<FileRecord | null> {
    const res = await this.http.request({ method: 'GET', path: `/v1/files/${seg(sha256)}`, accept: [404], ...withSignal(signal) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    return res.json<FileRecord>()
  }

  async uploadFile(body: Uint8Array | (() => AsyncIterable<Uint8Array> | Uint8Array), size: number, signal?: AbortSignal): Promise<FileRecord> {
    const res = await this.http.request({
      method: 'POST',
      path: '/v1/files',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      body: typeof body === 'function' ? () => asIterable(body()) : body,
      ...withSignal(signal),
    })
    return res.json<FileRecord>()
  }

  /**
   * Returns the operation UUID of the new instance. `stopRetrying` ends replays (425/429) without
   * cutting off a request in flight, whose operation may exist already.
   */
  async spawn(req: SpawnRequest, stopRetrying?: AbortSignal): Promise<string> {
    const res = await this.http.request({ method: 'POST', path: '/v1/instances', json: req, ...(stopRetrying ? { stopRetrying } : {}) })
    return operationUuid(res, await res.json<SpawnResponse>(), 'spawn')
  }

  /** Returns the operation UUID of the import; `stopRetrying` as for {@link spawn}. */
  async importImage(req: ImageImportRequest, stopRetrying?: AbortSignal): Promise<string> {
    const res = await this.http.request({ method: 'POST', path: '/v1/images/import', json: req, ...(stopRetrying ? { stopRetrying } : {}) })
    return operationUuid(res, await res.json<{ uuid?: string }>(), 'image import')
  }

  async getOperation(id: string, signal?: AbortSignal): Promise<OperationResponse> {
    const res = await this.http.request({ method: 'GET', path: `/v1/operations/${seg(id)}`, ...withSignal(signal) })
    return res.json<OperationResponse>()
  }

  /** DELETE with a bounded total time; 409 means the operation already finished. */
  async cancelOperation(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<CancelResult> {
    const deadline = AbortSignal.timeout(opts.timeoutMs)
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline
    const retry = new RetryPolicy({ delaysMs: CANCEL_RETRY_DELAYS_MS, maxAttempts: CANCEL_MAX_ATTEMPTS, ...(this.sleep ? { sleep: this.sleep } : {}) })
    const path = `/v1/operations/${seg(id)}`
    try {
      const res = await this.http.request({ method: 'DELETE', path, accept: [404, 409], timeoutMs: opts.timeoutMs, retry, signal })
      await res.dump()
      if (res.status === 409) return 'not-cancellable'
      if (res.status === 404) return 'not-found'
      return 'cancelled'
    } catch (error) {
      if (deadline.aborted && !opts.signal?.aborted) {
        throw new RequestTimeoutError({ method: 'DELETE', url: path, timeoutMs: opts.timeoutMs, phase: 'headers', cause: error })
      }
      throw error
    }
  }

  /** Exact tag lookup. The 302 is read, not followed: its Location names the image. */
  async findImageByTag(tag: string, signal?: AbortSignal): Promise<string | null> {
    const res = await this.http.request({ method: 'GET', path: '/v1/inspect/', query: { tag }, accept: [302, 404], ...withSignal(signal) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    if (res.status === 302) {
      await res.dump()
      const uuid = lastPathSegment(res.headers.location)
      if (uuid === undefined) throw new Error(`tag lookup for '${tag}' answered 302 without a usable Location`)
      return uuid
    }
    // A server (or proxy) that resolved the redirect itself answers with the image.
    const image = await res.json<Image>()
    if (!image.uuid) throw new Error(`tag lookup for '${tag}' returned no image uuid`)
    return image.uuid
  }

  async getImage(uuid: string, signal?: AbortSignal): Promise<Image | null> {
    const res = await this.http.request({ method: 'GET', path: `/v1/inspect/${seg(uuid)}/`, accept: [404], ...withSignal(signal) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    return res.json<Image>()
  }

  /** One regular file of an image (inspect download route); null when the image has no such file. */
  async downloadImageFile(uuid: string, path: string, signal?: AbortSignal): Promise<Uint8Array | null> {
    const res = await this.http.request({ method: 'GET', path: `/v1/inspect/${seg(uuid)}/download`, query: { path }, accept: [404], ...withSignal(signal) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    return res.bytes()
  }

  /** A PAX tar of a path of an image (inspect archive route), as a stream; null when the path does not exist. */
  async openImageArchive(uuid: string, path: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array> | null> {
    const res = await this.http.request({ method: 'GET', path: `/v1/inspect/${seg(uuid)}/archive`, query: { path }, accept: [404], stream: true, ...withSignal(signal) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    return res.body
  }

  async tagImage(uuid: string, tag: string, signal?: AbortSignal): Promise<Image> {
    const res = await this.http.request({ method: 'PATCH', path: `/v1/images/${seg(uuid)}/tag`, json: { tag }, ...withSignal(signal) })
    return res.json<Image>()
  }

  /**
   * Takes `tag` away from the image (`DELETE …/tag?tag=`), which then carries none. 204 whether or not
   * it held that tag; null when the image itself does not exist.
   */
  async untagImage(uuid: string, tag: string, signal?: AbortSignal): Promise<'untagged' | null> {
    const res = await this.http.request({ method: 'DELETE', path: `/v1/images/${seg(uuid)}/tag`, query: { tag }, accept: [404], ...withSignal(signal) })
    await res.dump()
    return res.status === 404 ? null : 'untagged'
  }

  /**
   * Opens the SSE event stream. Statuses other than 2xx are thrown as HttpError (never retried
   * here): the follower decides between reconnecting, polling and failing.
   */
  async openEvents(id: string, opts: OpenEventsOptions): Promise<HttpResponse> {
    const headers: Record<string, string> = { Accept: 'text/event-stream' }
    if (opts.lastEventId !== undefined) headers['Last-Event-Id'] = String(opts.lastEventId)
    return this.http.request({
      method: 'GET',
      path: `/v1/operations/${seg(id)}/events`,
      query: { follow: opts.follow },
      headers,
      stream: true,
      timeoutMs: EVENTS_HEADERS_TIMEOUT_MS,
      idleTimeoutMs: this.eventsIdleTimeoutMs,
      ...withSignal(opts.signal),
    })
  }
}

function withSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {}
}

/** Path parameters are fully percent-encoded, `/` included. */
function seg(value: string): string {
  return encodeURIComponent(value)
}

function lastPathSegment(location: string | undefined): string | undefined {
  if (!location) return undefined
  const path = location.split(/[?#]/, 1)[0] ?? ''
  const segments = path.split('/').filter((part) => part !== '')
  const last = segments.at(-1)
  return last === undefined ? undefined : decodeURIComponent(last)
}

function operationUuid(res: HttpResponse, body: { uuid?: string | undefined } | null, what: string): string {
  if (body && typeof body.uuid === 'string' && body.uuid !== '') return body.uuid
  const fromLocation = lastPathSegment(res.headers.location)
  if (fromLocation) return fromLocation
  throw new Error(`${what} response (HTTP ${res.status}) carried no operation uuid`)
}

async function* asIterable(value: AsyncIterable<Uint8Array> | Uint8Array): AsyncGenerator<Uint8Array> {
  if (value instanceof Uint8Array) yield value
  else yield* value
}
