/**
 * The Together image builder (`{builder}/builds`; no published spec, the SDK clients define it): a
 * streamed multipart submit, the build's status, its log stream, and its cancellation. The submit is
 * a create: it is replayed only when the shared policy knows nothing reached the service (425/429, a
 * connection that never carried it), never on a 5xx, which could start a second build.
 */
import { randomUUID } from 'node:crypto'
import { HttpClient, type HttpResponse } from '../../http/client.ts'
import { RequestTimeoutError } from '../../http/errors.ts'
import { RetryPolicy } from '../../http/retry.ts'
import type { Sleep } from '../../http/sleep.ts'
import type { BuildStatus, BuildSubmitted } from './wire.ts'

export interface TogetherBuilderOptions {
  baseUrl: string
  token: string
  userAgent: string
  retry?: RetryPolicy
  sleep?: Sleep
  /**
   * Silence on a log stream after which it counts as dead and is reconnected. A quiet RUN step can be
   * silent for a long time; a needless reconnect costs only a replay of the log, which is skipped.
   */
  logsIdleTimeoutMs?: number
}

export interface BuildSubmission {
  /** `name` or `name:tag`; the namespace comes from the token. */
  imageName: string
  /** The Dockerfile's path relative to the context root. */
  dockerfile: string
  buildArgs: Record<string, string>
  nydus: boolean
  /** Omitted (not sent empty) when undefined, so the service's default applies. */
  cacheKey?: string
  /** A fresh stream of the context's tar.gz per call: a replay regenerates it rather than buffering it. */
  context: () => AsyncIterable<Uint8Array>
}

export const DEFAULT_LOGS_IDLE_TIMEOUT_MS = 120_000
/** How long opening the log stream may wait for response headers before it counts as a drop. */
const LOGS_HEADERS_TIMEOUT_MS = 60_000
const CANCEL_RETRY_DELAYS_MS = [200, 500]
const CANCEL_MAX_ATTEMPTS = 3

export class TogetherBuilder {
  readonly http: HttpClient
  readonly baseUrl: string
  private readonly sleep: Sleep | undefined
  private readonly logsIdleTimeoutMs: number

  constructor(opts: TogetherBuilderOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '')
    this.sleep = opts.sleep
    this.logsIdleTimeoutMs = opts.logsIdleTimeoutMs ?? DEFAULT_LOGS_IDLE_TIMEOUT_MS
    this.http = new HttpClient({
      baseUrl: this.baseUrl,
      headers: { Authorization: `Bearer ${opts.token}`, 'User-Agent': opts.userAgent },
      retry: opts.retry ?? new RetryPolicy(opts.sleep ? { sleep: opts.sleep } : {}),
      ...(opts.sleep ? { sleep: opts.sleep } : {}),
    })
  }

  /** Sends the context and the build's parameters; returns the build id. */
  async submit(submission: BuildSubmission, stopRetrying?: AbortSignal): Promise<string> {
    const boundary = `sandbox-action-${randomUUID().replaceAll('-', '')}`
    const res = await this.http.request({
      method: 'POST',
      path: '/builds',
      headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` },
      body: () => multipartBody(boundary, submission),
      ...(stopRetrying ? { stopRetrying } : {}),
    })
    const text = await res.text()
    let body: BuildSubmitted | undefined
    try {
      body = JSON.parse(text) as BuildSubmitted
    } catch {
      body = undefined
    }
    const id = body?.build_id
    if (typeof id !== 'string' || id === '') {
      throw new Error(`the builder accepted the build (HTTP ${res.status}) but named no build_id: ${text.slice(0, 300)}`)
    }
    return id
  }

  /** The build's status; null when the builder does not know it. */
  async status(id: string, signal?: AbortSignal): Promise<BuildStatus | null> {
    const res = await this.http.request({ method: 'GET', path: `/builds/${seg(id)}`, accept: [404], ...(signal ? { signal } : {}) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    return res.json<BuildStatus>()
  }

  /**
   * Opens the build's log stream. A status other than 2xx is thrown as HttpError and never retried
   * here: the follower decides (404 means the build's pod is not there yet).
   */
  async openLogs(id: string, signal?: AbortSignal): Promise<HttpResponse> {
    return this.http.request({
      method: 'GET',
      path: `/builds/${seg(id)}/logs`,
      headers: { Accept: 'text/event-stream' },
      stream: true,
      timeoutMs: LOGS_HEADERS_TIMEOUT_MS,
      idleTimeoutMs: this.logsIdleTimeoutMs,
      ...(signal ? { signal } : {}),
    })
  }

  /** Deletes the build (its job and pod), bounded in total time. Idempotent. */
  async cancel(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<'cancelled' | 'not-found'> {
    const deadline = AbortSignal.timeout(opts.timeoutMs)
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline
    const retry = new RetryPolicy({ delaysMs: CANCEL_RETRY_DELAYS_MS, maxAttempts: CANCEL_MAX_ATTEMPTS, ...(this.sleep ? { sleep: this.sleep } : {}) })
    const path = `/builds/${seg(id)}`
    try {
      const res = await this.http.request({ method: 'DELETE', path, accept: [404], timeoutMs: opts.timeoutMs, retry, signal })
      await res.dump()
      return res.status === 404 ? 'not-found' : 'cancelled'
    } catch (error) {
      if (deadline.aborted && !opts.signal?.aborted) {
        throw new RequestTimeoutError({ method: 'DELETE', url: path, timeoutMs: opts.timeoutMs, phase: 'headers', cause: error })
      }
      throw error
    }
  }
}

/** The form as the SDK clients send it, with the context streamed as the last part. */
async function* multipartBody(boundary: string, submission: BuildSubmission): AsyncGenerator<Uint8Array> {
  const fields: Array<[string, string]> = [
    ['image_name', submission.imageName],
    ['dockerfile', submission.dockerfile],
    ['build_args', JSON.stringify(submission.buildArgs)],
    ['nydus_convert', submission.nydus ? 'true' : 'false'],
  ]
  if (submission.cacheKey !== undefined) fields.push(['cache_key', submission.cacheKey])
  let head = ''
  for (const [name, value] of fields) head += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`
  head += `--${boundary}\r\nContent-Disposition: form-data; name="context"; filename="context.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`
  yield Buffer.from(head, 'utf8')
  yield* submission.context()
  yield Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8')
}

function seg(value: string): string {
  return encodeURIComponent(value)
}
