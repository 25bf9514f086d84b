/**
 * The Together management API ("Bartender", `{api}/v1`): snapshots and sandboxes, one method per
 * route the action uses, all through the shared HttpClient. Creates are never replayed on an
 * ambiguous failure here; the provider looks for what a failed create may have left (by tag) first.
 */
import { HttpClient } from '../../http/client.ts'
import { HttpError, RequestTimeoutError } from '../../http/errors.ts'
import { RetryPolicy } from '../../http/retry.ts'
import type { Sleep } from '../../http/sleep.ts'
import { idempotentPost } from './idempotent-post.ts'
import type { ApiErrorBody, CreateSandboxBody, CreateSnapshotBody, Page, Sandbox, SandboxStatus, Snapshot, SnapshotAlias, Tags } from './wire.ts'

export interface TogetherApiOptions {
  /** The base without `/v1`. */
  baseUrl: string
  token: string
  userAgent: string
  retry?: RetryPolicy
  sleep?: Sleep
}

/** Cancels run inside the SIGINT grace window: a couple of quick tries, never the full ladder. */
const CANCEL_RETRY_DELAYS_MS = [200, 500]
const CANCEL_MAX_ATTEMPTS = 3
/** Pages of 100 read by a full listing before it gives up. */
const MAX_PAGES = 50

export type TerminateResult = 'terminating' | 'already-ended' | 'not-found'

export class TogetherApi {
  readonly http: HttpClient
  readonly retry: RetryPolicy
  private readonly sleep: Sleep | undefined

  constructor(opts: TogetherApiOptions) {
    this.retry = opts.retry ?? new RetryPolicy(opts.sleep ? { sleep: opts.sleep } : {})
    this.sleep = opts.sleep
    this.http = new HttpClient({
      baseUrl: `${opts.baseUrl.replace(/\/+$/, '')}/v1`,
      headers: { Authorization: `Bearer ${opts.token}`, 'User-Agent': opts.userAgent },
      retry: this.retry,
      ...(opts.sleep ? { sleep: opts.sleep } : {}),
    })
  }

  /** `stopRetrying` ends replays (425/429) without cutting off a request in flight. */
  async createSnapshot(body: CreateSnapshotBody, stopRetrying?: AbortSignal): Promise<Snapshot> {
    const res = await this.http.request({ method: 'POST', path: '/snapshots', json: body, ...(stopRetrying ? { stopRetrying } : {}) })
    return res.json<Snapshot>()
  }

  async getSnapshot(id: string, signal?: AbortSignal): Promise<Snapshot | null> {
    return this.getOrNull<Snapshot>(`/snapshots/${seg(id)}`, signal)
  }

  async getSnapshotByAlias(alias: string, signal?: AbortSignal): Promise<Snapshot | null> {
    return this.getOrNull<Snapshot>(`/snapshots/@${seg(alias)}`, signal)
  }

  /** The aliases pointing at a snapshot; null when the snapshot does not exist. */
  async snapshotAliases(id: string, signal?: AbortSignal): Promise<SnapshotAlias[] | null> {
    return this.getOrNull<SnapshotAlias[]>(`/snapshots/${seg(id)}/aliases`, signal)
  }

  /** The newest snapshots carrying all `tags`. */
  async findSnapshots(tags: Tags, opts: { excludeRetired: boolean; limit?: number; signal?: AbortSignal }): Promise<Snapshot[]> {
    const res = await this.http.request({
      method: 'GET',
      path: '/snapshots',
      // The spec's boolean is spelled out: the client's own `true` would be sent as 1.
      query: { ...tagQuery(tags), exclude_retired: opts.excludeRetired ? 'true' : 'false', limit: opts.limit ?? 20 },
      ...withSignal(opts.signal),
    })
    return (await res.json<Page<Snapshot>>()).data ?? []
  }

  /** Upsert: an existing alias is repointed, so a repeat after a 5xx is harmless. */
  async aliasSnapshot(id: string, alias: string, signal?: AbortSignal): Promise<void> {
    const res = await this.http.request({ method: 'POST', path: `/snapshots/${seg(id)}/aliases`, json: { alias }, retry: idempotentPost(this.retry), ...withSignal(signal) })
    await res.dump()
  }

  async createSandbox(body: CreateSandboxBody, stopRetrying?: AbortSignal): Promise<Sandbox> {
    const res = await this.http.request({ method: 'POST', path: '/sandboxes', json: body, ...(stopRetrying ? { stopRetrying } : {}) })
    return res.json<Sandbox>()
  }

  async getSandbox(id: string, signal?: AbortSignal): Promise<Sandbox | null> {
    return this.getOrNull<Sandbox>(`/sandboxes/${seg(id)}`, signal)
  }

  async findSandboxes(tags: Tags, opts: { statuses?: SandboxStatus[]; limit?: number; signal?: AbortSignal } = {}): Promise<Sandbox[]> {
    return (await this.sandboxPage(tags, opts)).data ?? []
  }

  /**
   * Every sandbox carrying all `tags`, page by page along `next_cursor` (a preview's sandboxes must
   * all be found, however many there are). Bounded, so a server that never ends the list cannot loop.
   */
  async allSandboxes(tags: Tags, opts: { signal?: AbortSignal } = {}): Promise<Sandbox[]> {
    const found: Sandbox[] = []
    let cursor: string | undefined
    for (let page = 0; page < MAX_PAGES; page++) {
      const { data, next_cursor } = await this.sandboxPage(tags, { limit: 100, ...(cursor ? { cursor } : {}), ...opts })
      found.push(...(data ?? []))
      if (!next_cursor) return found
      cursor = next_cursor
    }
    throw new Error(`more than ${MAX_PAGES * 100} sandboxes carry the tags ${JSON.stringify(tags)}; not reading further`)
  }

  private async sandboxPage(tags: Tags, opts: { statuses?: SandboxStatus[]; limit?: number; cursor?: string; signal?: AbortSignal }): Promise<Page<Sandbox>> {
    // `statuses[]` is form-exploded; one status fits the client's query map, more are not needed here.
    const status = opts.statuses?.length === 1 ? { 'statuses[]': opts.statuses[0] } : {}
    const query = { ...tagQuery(tags), ...status, limit: opts.limit ?? 20, ...(opts.cursor ? { cursor: opts.cursor } : {}) }
    const res = await this.http.request({ method: 'GET', path: '/sandboxes', query, ...withSignal(opts.signal) })
    return res.json<Page<Sandbox>>()
  }

  /** No new sandboxes from it; the service deletes it once nothing uses it. Retiring twice is harmless. */
  async retireSnapshot(id: string, signal?: AbortSignal): Promise<Snapshot> {
    const res = await this.http.request({ method: 'POST', path: `/snapshots/${seg(id)}/retire`, retry: idempotentPost(this.retry), ...withSignal(signal) })
    return res.json<Snapshot>()
  }

  /** Returns once the sandbox is settled, or when the service's own wait ends: check what came back. */
  async waitForSandbox(id: string, signal?: AbortSignal): Promise<Sandbox> {
    const res = await this.http.request({ method: 'POST', path: `/sandboxes/${seg(id)}/wait`, retry: idempotentPost(this.retry), ...withSignal(signal) })
    return res.json<Sandbox>()
  }

  /**
   * Ephemeral teardown (`snapshot: null`: nothing is kept), bounded in total time. Terminating a sandbox
   * that already ended is no error.
   */
  async terminateSandbox(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<TerminateResult> {
    const deadline = AbortSignal.timeout(opts.timeoutMs)
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline
    const retry = idempotentPost(new RetryPolicy({ delaysMs: CANCEL_RETRY_DELAYS_MS, maxAttempts: CANCEL_MAX_ATTEMPTS, ...(this.sleep ? { sleep: this.sleep } : {}) }))
    const path = `/sandboxes/${seg(id)}/terminate`
    try {
      const res = await this.http.request({ method: 'POST', path, json: { snapshot: null }, accept: [404, 409], timeoutMs: opts.timeoutMs, retry, signal })
      if (res.status === 404) {
        await res.dump()
        return 'not-found'
      }
      if (res.status === 409) {
        await res.dump()
        return 'already-ended'
      }
      const sandbox = await res.json<Sandbox>()
      return sandbox.status === 'terminated' || sandbox.status === 'failed_to_start' || sandbox.status === 'unrecovered' ? 'already-ended' : 'terminating'
    } catch (error) {
      if (deadline.aborted && !opts.signal?.aborted) {
        throw new RequestTimeoutError({ method: 'POST', url: path, timeoutMs: opts.timeoutMs, phase: 'headers', cause: error })
      }
      throw error
    }
  }

  private async getOrNull<T>(path: string, signal: AbortSignal | undefined): Promise<T | null> {
    const res = await this.http.request({ method: 'GET', path, accept: [404], ...withSignal(signal) })
    if (res.status === 404) {
      await res.dump()
      return null
    }
    return res.json<T>()
  }
}

/** `tags[key]=value` pairs (OpenAPI deepObject, exploded). */
function tagQuery(tags: Tags): Record<string, string> {
  const query: Record<string, string> = {}
  for (const [key, value] of Object.entries(tags)) query[`tags[${key}]`] = value
  return query
}

function withSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {}
}

/** Path parameters are fully percent-encoded, `/` included. */
function seg(value: string): string {
  return encodeURIComponent(value)
}

/**
 * A management-API failure in one line: the service's own message and the parameters it names
 * (`{code, message, errors}`), instead of the raw JSON body.
 */
export function describeApiFailure(error: unknown): string | undefined {
  if (!(error instanceof HttpError) || error.detail === undefined) return undefined
  let body: ApiErrorBody
  try {
    body = JSON.parse(error.detail) as ApiErrorBody
  } catch {
    return undefined
  }
  if (typeof body !== 'object' || body === null || typeof body.message !== 'string') return undefined
  const params = (body.errors ?? [])
    .filter((item) => typeof item?.message === 'string')
    .map((item) => (item.parameter ? `${item.parameter}: ${item.message}` : item.message))
  return `HTTP ${error.status}${body.code ? ` ${body.code}` : ''}: ${body.message}${params.length ? ` (${params.join('; ')})` : ''}`
}
