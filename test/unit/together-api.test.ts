/**
 * The management API client and the snapshot/sandbox creates against a scripted Bartender: the query
 * spellings the spec asks for, creates that fail ambiguously are looked up by tag before anything is
 * sent again (and never sent again when found), idempotent POSTs retried, teardown that tolerates
 * what already ended.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { RetryPolicy } from '../../src/http/retry.ts'
import { describeApiFailure, TogetherApi } from '../../src/providers/together/api.ts'
import { createOnce } from '../../src/providers/together/create-once.ts'
import { findByDigest, findExisting, registerSnapshot, TAG_DIGEST, TAG_REQUEST } from '../../src/providers/together/snapshots.ts'
import type { Sandbox, Snapshot } from '../../src/providers/together/wire.ts'
import { json, startScriptedServer, type Handler, type ScriptedServer } from '../helpers/scripted-server.ts'

const servers: ScriptedServer[] = []
afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.close()
})

const sleep = async () => undefined

async function apiWith(handler: Handler): Promise<{ api: TogetherApi; server: ScriptedServer }> {
  const server = await startScriptedServer(handler)
  servers.push(server)
  return { api: new TogetherApi({ baseUrl: server.url, token: 'api-key', userAgent: 'test', retry: new RetryPolicy({ sleep }), sleep }), server }
}

function snapshot(id: string, tags: Record<string, string>, retired = false): Snapshot {
  return { id, organization_id: null, project_id: 'p', byte_size: 1, tags, ttl: null, memory: false, created_at: '', retired_at: retired ? '2026-01-01T00:00:00Z' : null, updated_at: '' }
}

/** A Bartender holding snapshots in memory; `onCreate` decides what a create answers after it is stored. */
function snapshotService(onCreate: (n: number) => number) {
  const stored: Snapshot[] = []
  let creates = 0
  const handler: Handler = (req, res) => {
    if (req.method === 'POST' && req.path === '/v1/snapshots') {
      const body = JSON.parse(req.body.toString()) as { tags: Record<string, string> }
      const created = snapshot(`00000000-0000-4000-8000-00000000000${stored.length}`, body.tags)
      stored.push(created)
      const status = onCreate(++creates)
      return status === 201 ? json(res, 201, created) : json(res, status, { code: 'internal', message: 'upstream timeout', errors: [] })
    }
    if (req.method === 'GET' && req.path === '/v1/snapshots') {
      const wanted = [...req.query].filter(([k]) => k.startsWith('tags[')).map(([k, v]) => [k.slice(5, -1), v] as const)
      const excludeRetired = req.query.get('exclude_retired') === 'true'
      const data = stored.filter((s) => wanted.every(([k, v]) => s.tags[k] === v) && (!excludeRetired || s.retired_at === null)).reverse()
      return json(res, 200, { data: data.slice(0, Number(req.query.get('limit') ?? 20)), next_cursor: null })
    }
    return json(res, 404, { code: 'not_found', message: 'no route', errors: [] })
  }
  return { stored, handler }
}

describe('snapshots', () => {
  it('finds an unchanged build by its digest tag among active snapshots, spelling the query as the spec does', async () => {
    const digest = 'ab'.repeat(32)
    const service = snapshotService(() => 201)
    service.stored.push(snapshot('00000000-0000-4000-8000-0000000000aa', { [TAG_DIGEST]: digest }, true))
    const { api, server } = await apiWith(service.handler)
    expect(await findByDigest(api, digest)).toBeNull()
    service.stored.push(snapshot('00000000-0000-4000-8000-0000000000bb', { [TAG_DIGEST]: digest }))
    expect((await findByDigest(api, digest))?.id).toBe('00000000-0000-4000-8000-0000000000bb')
    const query = server.requests[0]?.query
    expect(query?.get(`tags[${TAG_DIGEST}]`)).toBe(digest)
    expect(query?.get('exclude_retired')).toBe('true')
  })

  it('registers with architecture, tags and ttl', async () => {
    const service = snapshotService(() => 201)
    const { api, server } = await apiWith(service.handler)
    await registerSnapshot(api, { imageRef: 'r/ns/img:t', architecture: 'arm64', digest: 'd1', ttlSeconds: 3600, tags: { 'sandbox-action.repository': 'o/r' } })
    const body = JSON.parse(server.requests[0]?.body.toString() ?? '{}')
    expect(body).toMatchObject({ image: 'r/ns/img:t', architecture: 'arm64', ttl: 3600, tags: { [TAG_DIGEST]: 'd1', 'sandbox-action.repository': 'o/r' } })
    expect(body.tags[TAG_REQUEST]).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('after a 5xx that did register, finds the snapshot by its digest and never registers again', async () => {
    const service = snapshotService((n) => (n === 1 ? 502 : 201))
    const { api, server } = await apiWith(service.handler)
    const registered = await registerSnapshot(api, { imageRef: 'r/ns/img:t', architecture: 'amd64', digest: 'd2', tags: {} }, { sleep })
    expect(registered.id).toBe(service.stored[0]?.id)
    expect(server.count('POST', /^\/v1\/snapshots$/)).toBe(1)
    expect(service.stored).toHaveLength(1)
  })

  it('sends the register again only when the lookup shows nothing was registered', async () => {
    const service = snapshotService((n) => {
      if (n === 1) service.stored.pop()
      return n === 1 ? 500 : 201
    })
    const { api, server } = await apiWith(service.handler)
    await registerSnapshot(api, { imageRef: 'r/ns/img:t', architecture: 'amd64', tags: {} }, { sleep })
    expect(server.count('POST', /^\/v1\/snapshots$/)).toBe(2)
    // Without a digest, the lookup is by this request's own tag.
    expect([...(server.requests[1]?.query.keys() ?? [])]).toContain(`tags[${TAG_REQUEST}]`)
  })

  it('does not look anything up after a plain refusal', async () => {
    const { api, server } = await apiWith((_req, res) => json(res, 400, { code: 'invalid_request', message: 'image is invalid', errors: [{ parameter: 'image', message: 'must be a reference' }] }))
    const failure = await registerSnapshot(api, { imageRef: '???', architecture: 'amd64', digest: 'd', tags: {} }).catch((error: unknown) => error)
    expect(describeApiFailure(failure)).toBe('HTTP 400 invalid_request: image is invalid (image: must be a reference)')
    expect(server.requests).toHaveLength(1)
  })

  it('names an existing snapshot by id or alias, and refuses a retired one', async () => {
    const id = '11111111-2222-4333-8444-555555555555'
    const { api, server } = await apiWith((req, res) => {
      if (req.path === `/v1/snapshots/${id}`) return json(res, 200, snapshot(id, {}))
      if (req.path === '/v1/snapshots/@nightly') return json(res, 200, snapshot(id, {}, true))
      return json(res, 404, { code: 'not_found', message: 'no such snapshot', errors: [] })
    })
    expect((await findExisting(api, id)).id).toBe(id)
    await expect(findExisting(api, 'nightly')).rejects.toThrow(/was retired/)
    await expect(findExisting(api, '@missing')).rejects.toThrow(/alias "missing"/)
    expect(server.requests.map((r) => r.path)).toEqual([`/v1/snapshots/${id}`, '/v1/snapshots/@nightly', '/v1/snapshots/@missing'])
  })

  it('upserts an alias, repeating it after a 5xx', async () => {
    let n = 0
    const { api, server } = await apiWith((_req, res) => (n++ === 0 ? json(res, 503, { code: 'unavailable', message: 'try again', errors: [] }) : json(res, 204, undefined)))
    await api.aliasSnapshot('s1', 'my-app@main')
    expect(server.requests.map((r) => [r.path, r.body.toString()])).toEqual([
      ['/v1/snapshots/s1/aliases', '{"alias":"my-app@main"}'],
      ['/v1/snapshots/s1/aliases', '{"alias":"my-app@main"}'],
    ])
  })
})

describe('sandboxes', () => {
  const sandbox = (id: string, status: Sandbox['status'], tags: Record<string, string> = {}): Sandbox => ({
    id,
    organization_id: null,
    project_id: 'p',
    snapshot_id: 's',
    cpu: 1,
    memory_bytes: 2e9,
    agent: { version: null, token: null, url: null },
    ttl: null,
    tags,
    termination_policy: null,
    status,
    status_reason: 'cold_start_requested',
    created_at: '',
    started_at: null,
    terminated_at: null,
    updated_at: '',
  })

  it('after a 5xx on create, finds the sandbox by its request tag and never creates a second one', async () => {
    const created: Sandbox[] = []
    const { api, server } = await apiWith((req, res) => {
      if (req.method === 'POST') {
        created.push(sandbox('sb-1', 'starting', JSON.parse(req.body.toString()).tags))
        return json(res, 504, { code: 'timeout', message: 'gateway timeout', errors: [] })
      }
      const tag = req.query.get(`tags[${TAG_REQUEST}]`)
      return json(res, 200, { data: created.filter((s) => s.tags[TAG_REQUEST] === tag), next_cursor: null })
    })
    const requestTag = 'req-123'
    const result = await createOnce({
      what: 'creating the sandbox',
      create: (stop) => api.createSandbox({ snapshot_id: 's', tags: { [TAG_REQUEST]: requestTag } }, stop),
      find: async () => (await api.findSandboxes({ [TAG_REQUEST]: requestTag }, { limit: 1 }))[0] ?? null,
      sleep,
    })
    expect(result.id).toBe('sb-1')
    expect(server.count('POST', /^\/v1\/sandboxes$/)).toBe(1)
  })

  it('gives up after its attempts when nothing is ever created, and sends nothing new once stopped', async () => {
    const { api, server } = await apiWith((req, res) => (req.method === 'POST' ? json(res, 500, { code: 'internal', message: 'boom', errors: [] }) : json(res, 200, { data: [], next_cursor: null })))
    const create = (stop: AbortSignal | undefined) => api.createSandbox({ snapshot_id: 's' }, stop)
    const find = async () => null
    await expect(createOnce({ what: 'x', create, find, sleep, attempts: 3 })).rejects.toThrow(/HTTP 500/)
    expect(server.count('POST', /^\/v1\/sandboxes$/)).toBe(3)
    const stopped = AbortSignal.abort(new Error('cancelled'))
    await expect(createOnce({ what: 'x', create, find, sleep, stopRetrying: stopped })).rejects.toThrow(/HTTP 500/)
    expect(server.count('POST', /^\/v1\/sandboxes$/)).toBe(4)
  })

  it('terminates ephemerally (snapshot: null); a sandbox that ended or is unknown is no error', async () => {
    const { api, server } = await apiWith((req, res) => {
      if (req.path === '/v1/sandboxes/live/terminate') return json(res, 200, sandbox('live', 'terminating'))
      if (req.path === '/v1/sandboxes/done/terminate') return json(res, 200, sandbox('done', 'terminated'))
      return json(res, 404, { code: 'not_found', message: 'no such sandbox', errors: [] })
    })
    expect(await api.terminateSandbox('live', { timeoutMs: 2000 })).toBe('terminating')
    expect(await api.terminateSandbox('done', { timeoutMs: 2000 })).toBe('already-ended')
    expect(await api.terminateSandbox('gone', { timeoutMs: 2000 })).toBe('not-found')
    expect(server.requests[0]?.body.toString()).toBe('{"snapshot":null}')
  })
})
