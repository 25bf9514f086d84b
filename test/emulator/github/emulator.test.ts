// The GitHub emulator's own wire behaviour, checked with plain fetch so no client library hides it.
import { afterEach, describe, expect, it } from 'vitest'
import { eventually } from '../../helpers/wait.ts'
import { startGitHubEmulator, type GitHubEmulator } from './server.ts'
import { NOT_ACCESSIBLE_MESSAGE, READ_ONLY, SECONDARY_RATE_LIMIT_MESSAGE } from './types.ts'

const SHA = 'a'.repeat(40)
let emulator: GitHubEmulator | undefined

afterEach(async () => {
  await emulator?.close()
  emulator = undefined
})

async function start(pathPrefix?: string): Promise<GitHubEmulator> {
  emulator = await startGitHubEmulator({
    tokens: { writer: {}, reader: READ_ONLY, other: { repositories: ['someone/else'] } },
    repos: [{ owner: 'acme', name: 'shop', id: 77, pulls: [{ number: 7, headRef: 'feature', headSha: SHA }] }],
    ...(pathPrefix ? { pathPrefix } : {}),
    now: () => Date.UTC(2026, 10, 22, 12, 0, 0),
  })
  return emulator
}

function call(em: GitHubEmulator, method: string, path: string, token: string | undefined, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/vnd.github+json' }
  if (token !== undefined) headers['authorization'] = `token ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  return fetch(`${em.apiUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
}

describe('GitHub emulator: issue comments', () => {
  it('answers a created comment in GitHub\'s shape', async () => {
    const em = await start()
    const res = await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'writer', { body: 'hello' })
    expect(res.status).toBe(201)
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
    const comment = (await res.json()) as Record<string, unknown>
    expect(comment).toMatchObject({
      body: 'hello',
      user: { login: 'github-actions[bot]', type: 'Bot' },
      created_at: '2026-11-22T12:00:00Z',
      updated_at: '2026-11-22T12:00:00Z',
      html_url: `https://github.com/acme/shop/pull/7#issuecomment-${comment['id'] as number}`,
    })
    expect(comment['node_id']).toMatch(/^IC_/)
  })

  it('paginates with per_page (default 30, capped at 100) and GitHub\'s link header', async () => {
    const em = await start()
    em.seedComments('acme', 'shop', 7, Array.from({ length: 250 }, (_, i) => `comment ${i}`))

    const first = await call(em, 'GET', '/repos/acme/shop/issues/7/comments', 'writer')
    expect(((await first.json()) as unknown[]).length).toBe(30)
    const base = `${em.apiUrl}/repositories/77/issues/7/comments`
    expect(first.headers.get('link')).toBe(`<${base}?page=2>; rel="next", <${base}?page=9>; rel="last"`)

    const capped = await call(em, 'GET', '/repos/acme/shop/issues/7/comments?per_page=500', 'writer')
    expect(((await capped.json()) as unknown[]).length).toBe(100)

    const middle = await call(em, 'GET', '/repos/acme/shop/issues/7/comments?per_page=100&page=2', 'writer')
    expect(middle.headers.get('link')).toBe(
      `<${base}?per_page=100&page=1>; rel="prev", <${base}?per_page=100&page=3>; rel="next", ` +
        `<${base}?per_page=100&page=3>; rel="last", <${base}?per_page=100&page=1>; rel="first"`,
    )
    // The link target answers, under the /repositories/{id} form.
    const last = await fetch(`${base}?per_page=100&page=3`, { headers: { authorization: 'Bearer writer' } })
    const bodies = ((await last.json()) as Array<{ body: string }>).map((c) => c.body)
    expect(bodies).toHaveLength(50)
    expect(bodies[49]).toBe('comment 249')
    expect(last.headers.get('link')).toBe(`<${base}?per_page=100&page=2>; rel="prev", <${base}?per_page=100&page=1>; rel="first"`)

    const single = await call(em, 'GET', '/repos/acme/shop/issues/7/comments?per_page=100&page=9', 'writer')
    expect(await single.json()).toEqual([])
  })

  it('refuses writes with a read-only token exactly as GitHub words it, but lets it read', async () => {
    const em = await start()
    const denied = await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'reader', { body: 'x' })
    expect(denied.status).toBe(403)
    expect(await denied.json()).toEqual({
      message: NOT_ACCESSIBLE_MESSAGE,
      documentation_url: 'https://docs.github.com/rest/issues/comments#create-an-issue-comment',
      status: '403',
    })
    expect((await call(em, 'GET', '/repos/acme/shop/issues/7/comments', 'reader')).status).toBe(200)
    expect(em.comments('acme', 'shop', 7)).toEqual([])
  })

  it('answers 401 without or with an unknown token, 404 for unknown and invisible repositories', async () => {
    const em = await start()
    expect((await call(em, 'GET', '/repos/acme/shop/issues/7/comments', undefined)).status).toBe(401)
    const bad = await call(em, 'GET', '/repos/acme/shop/issues/7/comments', 'nope')
    expect(((await bad.json()) as { message: string }).message).toBe('Bad credentials')
    expect((await call(em, 'GET', '/repos/acme/nothing/issues/7/comments', 'writer')).status).toBe(404)
    expect((await call(em, 'GET', '/repos/acme/shop/issues/8/comments', 'writer')).status).toBe(404)
    expect((await call(em, 'GET', '/repos/acme/shop/issues/7/comments', 'other')).status).toBe(404)
  })

  it('updates and deletes by id; a deleted comment is 404', async () => {
    const em = await start()
    const [seeded] = em.seedComments('acme', 'shop', 7, ['one'])
    const path = `/repos/acme/shop/issues/comments/${seeded?.id}`
    expect(((await (await call(em, 'PATCH', path, 'writer', { body: 'two' })).json()) as { body: string }).body).toBe('two')
    expect((await call(em, 'DELETE', path, 'writer')).status).toBe(204)
    expect((await call(em, 'PATCH', path, 'writer', { body: 'three' })).status).toBe(404)
    expect((await call(em, 'PATCH', '/repos/acme/shop/issues/comments/1', 'writer', {})).status).toBe(404)
  })

  it('validates bodies: missing body is 422, malformed JSON is 400, too long is 422', async () => {
    const em = await start()
    expect((await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'writer', {})).status).toBe(422)
    const malformed = await fetch(`${em.apiUrl}/repos/acme/shop/issues/7/comments`, {
      method: 'POST',
      headers: { authorization: 'token writer' },
      body: '{not json',
    })
    expect(malformed.status).toBe(400)
    expect((await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'writer', { body: 'x'.repeat(65_537) })).status).toBe(422)
  })
})

describe('GitHub emulator: faults, gates, prefix', () => {
  it('injects primary and secondary rate limits for the next N matching requests', async () => {
    const em = await start()
    em.faults.add(
      { method: 'POST', path: /\/comments$/, fault: { kind: 'primary-rate-limit', resetAfterSeconds: 30 } },
      { method: 'POST', path: /\/comments$/, fault: { kind: 'secondary-rate-limit', status: 429, retryAfterSeconds: 7 }, times: 2 },
    )
    const primary = await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'writer', { body: 'x' })
    expect(primary.status).toBe(403)
    expect(primary.headers.get('x-ratelimit-remaining')).toBe('0')
    expect(primary.headers.get('x-ratelimit-reset')).toBe(String(Date.UTC(2026, 10, 22, 12, 0, 30) / 1000))
    for (let i = 0; i < 2; i++) {
      const secondary = await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'writer', { body: 'x' })
      expect(secondary.status).toBe(429)
      expect(secondary.headers.get('retry-after')).toBe('7')
      expect(((await secondary.json()) as { message: string }).message).toBe(SECONDARY_RATE_LIMIT_MESSAGE)
    }
    expect((await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'writer', { body: 'x' })).status).toBe(201)
    expect(em.requests.map((r) => r.fault)).toEqual(['primary-rate-limit', 'secondary-rate-limit', 'secondary-rate-limit', undefined])
  })

  it('counts requests against the hourly limit and answers the primary limit when it is spent', async () => {
    emulator = await startGitHubEmulator({ tokens: { small: { rateLimit: 2 } }, repos: [{ owner: 'a', name: 'b', pulls: [{ number: 1, headRef: 'x', headSha: SHA }] }] })
    const path = '/repos/a/b/issues/1/comments'
    expect((await call(emulator, 'GET', path, 'small')).headers.get('x-ratelimit-remaining')).toBe('1')
    expect((await call(emulator, 'GET', path, 'small')).headers.get('x-ratelimit-remaining')).toBe('0')
    const spent = await call(emulator, 'GET', path, 'small')
    expect(spent.status).toBe(403)
    expect(spent.headers.get('x-ratelimit-remaining')).toBe('0')
  })

  it('carries out a write and then loses the answer when asked (afterProcessing)', async () => {
    const em = await start()
    em.faults.add({ method: 'POST', path: /\/comments$/, fault: { kind: 'status', status: 502, afterProcessing: true } })
    expect((await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'writer', { body: 'x' })).status).toBe(502)
    expect(em.comments('acme', 'shop', 7).map((c) => c.body)).toEqual(['x'])
  })

  it('holds a listing until another client\'s POST was answered', async () => {
    const em = await start()
    em.holdUntil({ method: 'GET', token: 'reader' }, { method: 'POST', token: 'writer' })
    const listing = call(em, 'GET', '/repos/acme/shop/issues/7/comments', 'reader').then(async (r) => (await r.json()) as unknown[])
    await eventually(() => em.requests.length === 1, 'the listing to arrive')
    await call(em, 'POST', '/repos/acme/shop/issues/7/comments', 'writer', { body: 'first' })
    expect(await listing).toHaveLength(1)
  })

  it('releases barrier parties together', async () => {
    const em = await start()
    em.barrier({ method: 'GET' }, 2)
    const a = call(em, 'GET', '/repos/acme/shop/issues/7/comments', 'writer')
    await eventually(() => em.requests.length === 1, 'the first party to arrive')
    em.seedComments('acme', 'shop', 7, ['arrived while the first party waited'])
    const b = call(em, 'GET', '/repos/acme/shop/issues/7/comments', 'reader')
    // Held before processing: the first party sees what was there when the barrier opened.
    expect(await (await a).json()).toHaveLength(1)
    expect(await (await b).json()).toHaveLength(1)
  })

  it('serves the API only under the GHES prefix, with links and html_urls to match', async () => {
    const em = await start('/api/v3')
    expect(em.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/v3$/)
    em.seedComments('acme', 'shop', 7, Array.from({ length: 31 }, (_, i) => `c${i}`))
    const res = await call(em, 'GET', '/repos/acme/shop/issues/7/comments', 'writer')
    expect(res.headers.get('link')).toContain(`<${em.apiUrl}/repositories/77/issues/7/comments?page=2>; rel="next"`)
    const [comment] = (await res.json()) as Array<{ html_url: string }>
    expect(comment?.html_url.startsWith(`${em.serverUrl}/acme/shop/pull/7#issuecomment-`)).toBe(true)
    const withoutPrefix = await fetch(`${em.serverUrl}/repos/acme/shop/issues/7/comments`, { headers: { authorization: 'token writer' } })
    expect(withoutPrefix.status).toBe(404)
  })
})

describe('GitHub emulator: deployments and pulls', () => {
  it('creates deployments and statuses, filters listings, deletes only inactive ones', async () => {
    const em = await start()
    const create = async (environment: string) =>
      (await (await call(em, 'POST', '/repos/acme/shop/deployments', 'writer', {
        ref: 'feature', environment, transient_environment: true, auto_merge: false, required_contexts: [],
      })).json()) as { id: number; sha: string; transient_environment: boolean; production_environment: boolean }
    const one = await create('preview/pr-7')
    const two = await create('preview/pr-8')
    expect(one).toMatchObject({ sha: SHA, transient_environment: true, production_environment: false })

    const listed = (await (await call(em, 'GET', '/repos/acme/shop/deployments?environment=preview%2Fpr-7', 'writer')).json()) as Array<{ id: number }>
    expect(listed.map((d) => d.id)).toEqual([one.id])

    const statuses = `/repos/acme/shop/deployments/${one.id}/statuses`
    const success = await call(em, 'POST', statuses, 'writer', { state: 'success', environment_url: 'https://p.example', log_url: 'https://l.example' })
    expect(await success.json()).toMatchObject({ state: 'success', environment_url: 'https://p.example', target_url: 'https://l.example' })
    expect((await call(em, 'POST', statuses, 'writer', { state: 'exploded' })).status).toBe(422)

    const refused = await call(em, 'DELETE', `/repos/acme/shop/deployments/${one.id}`, 'writer')
    expect(refused.status).toBe(422)
    await call(em, 'POST', statuses, 'writer', { state: 'inactive' })
    expect((await call(em, 'DELETE', `/repos/acme/shop/deployments/${one.id}`, 'writer')).status).toBe(204)
    // The last one left may go whatever its state.
    expect((await call(em, 'DELETE', `/repos/acme/shop/deployments/${two.id}`, 'writer')).status).toBe(204)
  })

  it('refuses an unknown ref and a read-only token', async () => {
    const em = await start()
    const unknown = await call(em, 'POST', '/repos/acme/shop/deployments', 'writer', { ref: 'nope' })
    expect(unknown.status).toBe(422)
    expect(((await unknown.json()) as { message: string }).message).toBe('No ref found for: nope')
    expect((await call(em, 'POST', '/repos/acme/shop/deployments', 'reader', { ref: 'feature' })).status).toBe(403)
  })

  it('describes a pull request with its head and whether it comes from a fork', async () => {
    const em = await start()
    em.addPull('acme', 'shop', { number: 9, headRef: 'patch-1', headSha: 'b'.repeat(40), fork: true, user: 'mallory' })
    const pull = (await (await call(em, 'GET', '/repos/acme/shop/pulls/9', 'reader')).json()) as Record<string, any>
    expect(pull['head']).toMatchObject({ ref: 'patch-1', sha: 'b'.repeat(40), repo: { fork: true, full_name: 'mallory/shop' } })
  })
})
