/**
 * The agent inside one running sandbox ("Pint", sandbox-openapi.json), reached at the sandbox's
 * `agent.url` with its own `agent.token`: execs and their output, files, directories, file_stat and
 * ports. Exec creation is a create (never replayed on an ambiguous failure); starting an exec,
 * writing a file and reading anything are safe to repeat.
 */
import { HttpClient, type HttpResponse } from '../../http/client.ts'
import { HttpError, RequestTimeoutError } from '../../http/errors.ts'
import { RetryPolicy } from '../../http/retry.ts'
import type { Sleep } from '../../http/sleep.ts'
import { idempotentPost } from './idempotent-post.ts'
import type { CreateExecBody, ExecItem, ExecOutputFrame, FileInfo, PortsList } from './wire.ts'

export interface AgentClientOptions {
  url: string
  token: string
  userAgent: string
  retry?: RetryPolicy
  sleep?: Sleep
  /** Silence on an exec's output stream after which it counts as dead and is resumed. */
  outputIdleTimeoutMs?: number
}

export const DEFAULT_OUTPUT_IDLE_TIMEOUT_MS = 120_000
const OUTPUT_HEADERS_TIMEOUT_MS = 60_000
const CANCEL_RETRY_DELAYS_MS = [200, 500]
const CANCEL_MAX_ATTEMPTS = 3

export class AgentClient {
  readonly http: HttpClient
  readonly retry: RetryPolicy
  private readonly sleep: Sleep | undefined
  private readonly outputIdleTimeoutMs: number

  constructor(opts: AgentClientOptions) {
    this.retry = opts.retry ?? new RetryPolicy(opts.sleep ? { sleep: opts.sleep } : {})
    this.sleep = opts.sleep
    this.outputIdleTimeoutMs = opts.outputIdleTimeoutMs ?? DEFAULT_OUTPUT_IDLE_TIMEOUT_MS
    this.http = new HttpClient({
      baseUrl: opts.url,
      headers: { Authorization: `Bearer ${opts.token}`, 'User-Agent': opts.userAgent },
      retry: this.retry,
      ...(opts.sleep ? { sleep: opts.sleep } : {}),
    })
  }

  /** `stopRetrying` ends replays (425/429) without cutting off a request in flight. */
  async createExec(body: CreateExecBody, stopRetrying?: AbortSignal): Promise<ExecItem> {
    const res = await this.http.request({ method: 'POST', path: '/api/v1/execs', json: body, ...(stopRetrying ? { stopRetrying } : {}) })
    return res.json<ExecItem>()
  }

  async getExec(id: string, signal?: AbortSignal): Promise<ExecItem | null> {
    const res = await this.http.request({ method: 'GET', path: `/api/v1/execs/${seg(id)}`, accept: [404], ...withSignal(signal) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    return res.json<ExecItem>()
  }

  /** Kills the exec's process and removes it, bounded in total time; an exec already gone is no error. */
  async deleteExec(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<'killed' | 'not-found'> {
    const deadline = AbortSignal.timeout(opts.timeoutMs)
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline
    const retry = new RetryPolicy({ delaysMs: CANCEL_RETRY_DELAYS_MS, maxAttempts: CANCEL_MAX_ATTEMPTS, ...(this.sleep ? { sleep: this.sleep } : {}) })
    const path = `/api/v1/execs/${seg(id)}`
    try {
      const res = await this.http.request({ method: 'DELETE', path, accept: [404], timeoutMs: opts.timeoutMs, retry, signal })
      await res.dump()
      return res.status === 404 ? 'not-found' : 'killed'
    } catch (error) {
      if (deadline.aborted && !opts.signal?.aborted) {
        throw new RequestTimeoutError({ method: 'DELETE', url: path, timeoutMs: opts.timeoutMs, phase: 'headers', cause: error })
      }
      throw error
    }
  }

  /**
   * The exec's output as SSE: buffered frames after `lastSequence` (all when undefined), then live
   * ones, to the frame carrying `exitCode`. Non-2xx statuses are thrown, never retried here.
   */
  async openExecOutput(id: string, lastSequence: number | undefined, signal?: AbortSignal): Promise<HttpResponse> {
    return this.http.request({
      method: 'GET',
      path: `/api/v1/stream/execs/${seg(id)}/io`,
      ...(lastSequence === undefined ? {} : { query: { lastSequence } }),
      headers: { Accept: 'text/event-stream' },
      stream: true,
      timeoutMs: OUTPUT_HEADERS_TIMEOUT_MS,
      idleTimeoutMs: this.outputIdleTimeoutMs,
      ...withSignal(signal),
    })
  }

  /** Creates or overwrites a file with the bytes `body` produces (a factory, so a retry can replay it). */
  async writeFile(path: string, body: () => AsyncIterable<Uint8Array>, size: number, signal?: AbortSignal): Promise<void> {
    const res = await this.http.request({
      method: 'POST',
      path: `/api/v1/files/${seg(path)}`,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      body,
      retry: idempotentPost(this.retry),
      ...withSignal(signal),
    })
    await res.dump()
  }

  async fileStat(path: string, signal?: AbortSignal): Promise<FileInfo | null> {
    const res = await this.http.request({ method: 'GET', path: `/api/v1/file_stat/${seg(path)}`, accept: [404], ...withSignal(signal) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    return res.json<FileInfo>()
  }

  /**
   * Makes sure a directory exists; its parent must. The agent answers an existing directory with an
   * error (500), so existence is read first, and once more when a create fails (a race, or a create
   * whose answer was lost).
   */
  async ensureDirectory(path: string, signal?: AbortSignal): Promise<'created' | 'existed'> {
    const existing = await this.fileStat(path, signal)
    if (existing?.isDir) return 'existed'
    if (existing) throw new Error(`${path} exists in the sandbox and is not a directory`)
    try {
      const res = await this.http.request({ method: 'POST', path: `/api/v1/directories/${seg(path)}`, ...withSignal(signal) })
      await res.dump()
      return 'created'
    } catch (error) {
      if (!(error instanceof HttpError) || signal?.aborted) throw error
      if ((await this.fileStat(path, signal))?.isDir) return 'existed'
      throw error
    }
  }

  /** The exec's buffered output so far (a snapshot, not a stream): for a command left running. */
  async execFrames(id: string, signal?: AbortSignal): Promise<ExecOutputFrame[]> {
    const res = await this.http.request({ method: 'GET', path: `/api/v1/execs/${seg(id)}/io`, ...withSignal(signal) })
    return res.json<ExecOutputFrame[]>()
  }

  async listPorts(signal?: AbortSignal): Promise<PortsList> {
    const res = await this.http.request({ method: 'GET', path: '/api/v1/ports', ...withSignal(signal) })
    return res.json<PortsList>()
  }
}

function withSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {}
}

/** The whole sandbox path as one percent-encoded segment, as the SDK sends it. */
function seg(value: string): string {
  return encodeURIComponent(value)
}
