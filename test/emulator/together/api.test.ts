import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startTogetherEmulator, type TogetherEmulator } from './index.ts'
import { agent, api, call, execToEnd, runningSandbox, waitUntil } from './test-client.ts'

let emu: TogetherEmulator

beforeAll(async () => {
  emu = await startTogetherEmulator({ log: () => undefined })
})
afterAll(async () => {
  await emu.close()
})
beforeEach(() => emu.reset())

async function snapshot(body: Record<string, unknown> = {}): Promise<any> {
  const res = await api(emu, 'POST', '/snapshots', { image: 'busybox', ...body })
  expect(res.status, res.body.toString()).toBe(201)
  return res.json()
}

describe('Together emulator API: snapshots', () => {
  it('creates a snapshot of a known image with the documented fields', async () => {
    const created = await snapshot({ architecture: 'amd64', ttl: 3600, tags: { 'cache.digest': 'sha256-abc' } })
    expect(created).toMatchObject({
      organization_id: null,
      project_id: 'proj_emulator',
      tags: { 'cache.digest': 'sha256-abc' },
      ttl: 3600,
      memory: false,
      retired_at: null,
    })
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(created.byte_size).toBeGreaterThan(0)
    expect(Object.keys(created).sort()).toEqual(['byte_size', 'created_at', 'id', 'memory', 'organization_id', 'project_id', 'retired_at', 'tags', 'ttl', 'updated_at'])
    expect((await api(emu, 'GET', `/snapshots/${created.id}`)).json()).toEqual(created)
  })

  it('answers 404 for an image it does not know, and 400 with {code, message, errors} for bad input', async () => {
    const unknown = await api(emu, 'POST', '/snapshots', { image: 'registry.example.com/team/missing:1' })
    expect(unknown.status).toBe(404)
    expect(unknown.json()).toMatchObject({ code: 'not_found', errors: [] })
    const misspelled = await api(emu, 'POST', '/snapshots', { image: 'busybox', tag: { a: 'b' } })
    expect(misspelled.status).toBe(400)
    expect(misspelled.json()).toEqual({
      code: 'invalid_request',
      message: 'unknown field "tag"',
      errors: [{ parameter: 'tag', code: 'invalid', message: 'unknown field "tag"' }],
    })
    for (const body of [{}, { image: 1 }, { image: 'busybox', ttl: 0 }, { image: 'busybox', architecture: 'x86' }, { image: 'busybox', tags: { '-bad': 'x' } }, { image: 'UPPER/Case' }]) {
      expect((await api(emu, 'POST', '/snapshots', body)).status, JSON.stringify(body)).toBe(400)
    }
    const textBody = await call(`${emu.apiUrl}/v1/snapshots`, 'POST', { token: emu.apiKey, body: '{"image":"busybox"}', headers: { 'content-type': 'text/plain' } })
    expect(textBody.status).toBe(415)
    expect((await api(emu, 'GET', '/snapshots/not-a-uuid')).status).toBe(400)
    expect((await api(emu, 'GET', '/snapshots/00000000-0000-4000-8000-000000000000')).status).toBe(404)
  })

  it('resolves aliases (an upsert), lists and deletes them idempotently', async () => {
    const first = await snapshot()
    const second = await snapshot()
    expect((await api(emu, 'POST', `/snapshots/${first.id}/aliases`, { alias: 'my-app@v1' })).status).toBe(204)
    expect((await api(emu, 'GET', `/snapshots/@${encodeURIComponent('my-app@v1')}`)).json().id).toBe(first.id)
    expect((await api(emu, 'POST', `/snapshots/${second.id}/aliases`, { alias: 'my-app@v1' })).status).toBe(204)
    expect((await api(emu, 'GET', '/snapshots/@my-app@v1')).json().id).toBe(second.id)
    expect((await api(emu, 'GET', `/snapshots/${first.id}/aliases`)).json()).toEqual([])
    const listed = (await api(emu, 'GET', `/snapshots/${second.id}/aliases`)).json()
    expect(listed).toEqual([{ snapshot_id: second.id, alias: 'my-app@v1', created_at: expect.any(String) }])
    expect((await api(emu, 'DELETE', '/snapshot-aliases/my-app@v1')).status).toBe(204)
    expect((await api(emu, 'DELETE', '/snapshot-aliases/my-app@v1')).status).toBe(204)
    expect((await api(emu, 'GET', '/snapshots/@my-app@v1')).status).toBe(404)
    expect((await api(emu, 'POST', `/snapshots/${first.id}/aliases`, { name: 'x' })).status).toBe(400)
  })

  it('lists newest first with cursors, filters by tags (deepObject) and exclude_retired, and batches', async () => {
    const marker = `m${Date.now()}`
    const made = [] as any[]
    for (let i = 0; i < 5; i++) made.push(await snapshot({ tags: { run: marker, index: String(i) } }))
    await api(emu, 'POST', `/snapshots/${made[4].id}/retire`)
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const query: string = `/snapshots?limit=2&tags[run]=${marker}${cursor ? `&cursor=${cursor}` : ''}`
      const page: any = (await api(emu, 'GET', query)).json()
      expect(page.data.length).toBeLessThanOrEqual(2)
      seen.push(...page.data.map((s: any) => s.id))
      cursor = page.next_cursor
    } while (cursor)
    expect(seen).toEqual([...made].reverse().map((s) => s.id))
    const active = (await api(emu, 'GET', `/snapshots?tags[run]=${marker}&tags[index]=4&exclude_retired=true`)).json()
    expect(active).toEqual({ data: [], next_cursor: null })
    const batch = (await api(emu, 'GET', `/snapshots/batch?ids[]=${made[2].id}&ids[]=00000000-0000-4000-8000-000000000000&ids[]=${made[0].id}`)).json()
    expect(batch.map((s: any) => s.id)).toEqual([made[2].id, made[0].id])
    expect((await api(emu, 'GET', `/snapshots/batch?ids[]=${made[0].id}&ids[]=${made[0].id}`)).status).toBe(400)
    expect((await api(emu, 'GET', `/snapshots/batch?ids=${made[0].id}`)).status).toBe(400)
    expect((await api(emu, 'GET', '/snapshots?limit=101')).status).toBe(400)
    expect((await api(emu, 'GET', '/snapshots?exclude_retired=1')).status).toBe(400)
    expect((await api(emu, 'GET', '/snapshots?tag=x')).status).toBe(400)
    expect((await api(emu, 'GET', '/snapshots?cursor=nope')).status).toBe(400)
  })

  it('retires (idempotent) and a retired snapshot starts no sandbox', async () => {
    const made = await snapshot()
    const retired = (await api(emu, 'POST', `/snapshots/${made.id}/retire`)).json()
    expect(retired.retired_at).not.toBeNull()
    expect((await api(emu, 'POST', `/snapshots/${made.id}/retire`)).json().retired_at).toBe(retired.retired_at)
    const refused = await api(emu, 'POST', '/sandboxes', { snapshot_id: made.id })
    expect(refused.status).toBe(400)
    expect(refused.json().code).toBe('snapshot_retired')
  })

  it('retires a snapshot when its ttl runs out', async () => {
    const made = await snapshot({ ttl: 1 })
    await waitUntil(async () => (await api(emu, 'GET', `/snapshots/${made.id}`)).json().retired_at !== null, 'the ttl to retire it')
  })
})

describe('Together emulator API: sandboxes', () => {
  it('starts: starting with no agent, then running with agent url and token; wait returns it settled', async () => {
    const made = await snapshot()
    const created = await api(emu, 'POST', '/sandboxes', { snapshot_id: made.id, cpu: 2, memory_bytes: 4_000_000_000, tags: { pr: '7' } })
    expect(created.status).toBe(201)
    expect(created.json()).toMatchObject({
      snapshot_id: made.id,
      status: 'starting',
      status_reason: 'cold_start_requested',
      agent: { version: null, token: null, url: null },
      cpu: 2,
      memory_bytes: 4_000_000_000,
      tags: { pr: '7' },
      termination_policy: null,
      ttl: null,
      started_at: null,
    })
    const running = (await api(emu, 'POST', `/sandboxes/${created.json().id}/wait`)).json()
    expect(running).toMatchObject({ status: 'running', status_reason: 'cold_started' })
    expect(running.agent.url).toBe(`${emu.agentsUrl}/agents/${running.id}`)
    expect(running.agent.token).toEqual(expect.any(String))
    expect(running.started_at).not.toBeNull()
    expect((await api(emu, 'GET', `/sandboxes/${running.id}`)).json()).toEqual(running)
  })

  it('starts from an alias; refuses bad requests', async () => {
    const made = await snapshot()
    await api(emu, 'POST', `/snapshots/${made.id}/aliases`, { alias: 'base@1' })
    expect((await api(emu, 'POST', '/sandboxes', { snapshot_alias: 'base@1' })).status).toBe(201)
    const bad: Array<Record<string, unknown>> = [
      {},
      { snapshot_id: made.id, snapshot_alias: 'base@1' },
      { snapshot_id: made.id, cpu: 0 },
      { snapshot_id: made.id, cpu: 1, memory_bytes: 9_000_000_000 },
      { snapshot_id: made.id, memoryBytes: 2_000_000_000 },
      { snapshot_id: made.id, ttl: 0 },
      { snapshot_id: made.id, termination_policy: {} },
      { snapshot_id: made.id, termination_policy: { snapshot: { alias: ['x'] } } },
      { snapshot_id: 'nope' },
    ]
    for (const body of bad) expect((await api(emu, 'POST', '/sandboxes', body)).status, JSON.stringify(body)).toBe(400)
    expect((await api(emu, 'POST', '/sandboxes', { snapshot_alias: 'missing' })).status).toBe(404)
  })

  it('terminates: terminating at once, terminated after wait, its processes gone; terminate is idempotent', async () => {
    const sandbox = await runningSandbox(emu, (await snapshot()).id)
    const sleeper = await agent(sandbox, 'POST', '/execs', { command: 'sleep', args: ['300'] })
    expect(sleeper.status).toBe(201)
    const terminating = await api(emu, 'POST', `/sandboxes/${sandbox.id}/terminate`)
    expect(terminating.json()).toMatchObject({ status: 'terminating', status_reason: 'termination_requested', agent: { token: null, url: null } })
    const terminated = (await api(emu, 'POST', `/sandboxes/${sandbox.id}/wait`)).json()
    expect(terminated).toMatchObject({ status: 'terminated', status_reason: 'termination_requested' })
    expect(terminated.terminated_at).not.toBeNull()
    expect(emu.sandboxes().find((s) => s.id === sandbox.id)?.root).toBeNull()
    await waitUntil(() => emu.counts().processesAlive === 0, 'the sandbox processes to die')
    expect((await api(emu, 'POST', `/sandboxes/${sandbox.id}/terminate`)).json().status).toBe('terminated')
  })

  it('terminating with a snapshot policy keeps the filesystem as a snapshot aliased sandbox:<id>', async () => {
    const sandbox = await runningSandbox(emu, (await snapshot()).id, { termination_policy: { snapshot: { aliases: ['after@1'], tags: { kept: 'yes' } } } })
    const wrote = await execToEnd(sandbox, 'sh', ['-c', 'echo state > /tmp/state.txt'])
    expect(wrote.frames.at(-1).exitCode).toBe(0)
    await api(emu, 'POST', `/sandboxes/${sandbox.id}/terminate`)
    await api(emu, 'POST', `/sandboxes/${sandbox.id}/wait`)
    const produced = (await api(emu, 'GET', `/snapshots/@sandbox:${sandbox.id}`)).json()
    expect(produced.tags).toEqual({ kept: 'yes' })
    expect((await api(emu, 'GET', '/snapshots/@after@1')).json().id).toBe(produced.id)
    const next = await runningSandbox(emu, produced.id)
    const read = await execToEnd(next, 'cat', ['/tmp/state.txt'])
    expect(read.frames[0].output).toBe('state\n')
    await api(emu, 'POST', `/sandboxes/${next.id}/terminate`, { snapshot: null })
    await api(emu, 'POST', `/sandboxes/${next.id}/wait`)
    expect((await api(emu, 'GET', `/snapshots/@sandbox:${next.id}`)).status).toBe(404)
  })

  it('terminates a sandbox whose ttl runs out (autoterminated)', async () => {
    const sandbox = await runningSandbox(emu, (await snapshot()).id, { ttl: 1 })
    await waitUntil(async () => (await api(emu, 'GET', `/sandboxes/${sandbox.id}`)).json().status === 'terminated', 'the ttl to terminate it')
    expect((await api(emu, 'GET', `/sandboxes/${sandbox.id}`)).json().status_reason).toBe('autoterminated')
  })

  it('lists with statuses[], snapshot_id and tags filters, and batches', async () => {
    const made = await snapshot()
    const a = await runningSandbox(emu, made.id, { tags: { group: 'list-test' } })
    const b = await runningSandbox(emu, made.id, { tags: { group: 'list-test' } })
    await api(emu, 'POST', `/sandboxes/${a.id}/terminate`)
    await api(emu, 'POST', `/sandboxes/${a.id}/wait`)
    const running = (await api(emu, 'GET', `/sandboxes?statuses[]=running&snapshot_id=${made.id}&tags[group]=list-test`)).json()
    expect(running.data.map((s: any) => s.id)).toEqual([b.id])
    const both = (await api(emu, 'GET', `/sandboxes?statuses[]=running&statuses[]=terminated&snapshot_id=${made.id}`)).json()
    expect(both.data.map((s: any) => s.id)).toEqual([b.id, a.id])
    expect((await api(emu, 'GET', '/sandboxes?statuses[]=sleeping')).status).toBe(400)
    expect((await api(emu, 'GET', `/sandboxes/batch?ids[]=${a.id}&ids[]=${b.id}`)).json().map((s: any) => s.id)).toEqual([a.id, b.id])
    await api(emu, 'POST', `/sandboxes/${b.id}/terminate`)
  })

  it('wants the API key on every route', async () => {
    const none = await call(`${emu.apiUrl}/v1/snapshots`, 'GET')
    expect(none.status).toBe(401)
    expect(none.json()).toEqual({ code: 'unauthenticated', message: 'missing or invalid API key', errors: [] })
    expect((await call(`${emu.apiUrl}/v1/sandboxes`, 'POST', { token: 'wrong', body: {} })).status).toBe(401)
    expect((await call(`${emu.apiUrl}/v1/nope`, 'GET', { token: emu.apiKey })).status).toBe(404)
    expect((await call(`${emu.apiUrl}/v1/snapshots`, 'PUT', { token: emu.apiKey })).status).toBe(405)
    expect(emu.requests.filter((r) => r.headers.authorization !== undefined).every((r) => r.headers.authorization === '<redacted>')).toBe(true)
  })

  it('gzips a body only for a client that accepts it', async () => {
    const zipped = await call(`${emu.apiUrl}/v1/snapshots`, 'GET', { token: emu.apiKey })
    expect(zipped.headers['content-encoding']).toBe('gzip')
    const identity = await call(`${emu.apiUrl}/v1/snapshots`, 'GET', { token: emu.apiKey, headers: { 'accept-encoding': 'identity' } })
    expect(identity.headers['content-encoding']).toBeUndefined()
    expect(identity.json().data).toEqual(zipped.json().data)
  })
})
