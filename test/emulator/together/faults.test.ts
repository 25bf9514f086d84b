import { request } from 'undici'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startTogetherEmulator, type TogetherEmulator } from './index.ts'
import { api, call, contextArchive, execToEnd, followBuild, readStream, runningSandbox, sseData, submitBuild, waitUntil } from './test-client.ts'

let emu: TogetherEmulator
let snapshotId: string

beforeAll(async () => {
  emu = await startTogetherEmulator({ keepaliveMs: 50, waitTimeoutMs: 300, log: () => undefined })
  snapshotId = (await api(emu, 'POST', '/snapshots', { image: 'busybox' })).json().id
})
afterAll(async () => {
  await emu.close()
})
beforeEach(() => emu.reset())

const logsUrl = (id: string) => `${emu.builderUrl}/builds/${id}/logs`

/** A build that prints `count` numbered lines, one RUN each so they arrive over time, then finishes. */
async function chattyBuild(count: number): Promise<string> {
  const runs = Array.from({ length: count }, (_, i) => `RUN echo line-${i}`).join('\n')
  const res = await submitBuild(emu, contextArchive({ Dockerfile: `FROM busybox:latest\n${runs}\n` }), { cache_key: `chatty-${Date.now()}-${Math.random().toString(36).slice(2)}` })
  return res.json().build_id
}

describe('Together emulator faults: answers', () => {
  it('injects a status with Retry-After, in each surface error shape, for `times` matching requests', async () => {
    emu.faults.add(
      { method: 'GET', path: '^/v1/snapshots$', times: 2, action: { kind: 'status', status: 503, retryAfter: '2' } },
      { server: 'builder', path: '^/builds/', action: { kind: 'status', status: 429 } },
    )
    const first = await api(emu, 'GET', '/snapshots')
    expect(first.status).toBe(503)
    expect(first.headers['retry-after']).toBe('2')
    expect(first.json()).toEqual({ code: 'internal_error', message: 'injected fault: status 503', errors: [] })
    expect((await api(emu, 'GET', '/snapshots')).status).toBe(503)
    expect((await api(emu, 'GET', '/snapshots')).status).toBe(200)
    const builder = await call(`${emu.builderUrl}/builds/x`, 'GET', { token: emu.apiKey })
    expect(builder.json()).toEqual({ error: 'injected fault: status 429' })
    expect(emu.requests.map((r) => r.fault)).toEqual(['status', 'status', undefined, 'status'])
    expect(emu.requests.map((r) => r.status)).toEqual([503, 503, 200, 429])
    expect(emu.faults.pending()).toEqual([])
  })

  it('drops the connection before answering', async () => {
    emu.faults.add({ path: '^/v1/sandboxes$', action: { kind: 'drop-before-response' } })
    await expect(api(emu, 'GET', '/sandboxes')).rejects.toThrow()
    expect((await api(emu, 'GET', '/sandboxes')).status).toBe(200)
  })

  it('hangs a request until the client gives up', async () => {
    emu.faults.add({ path: '^/v1/snapshots$', action: { kind: 'hang' } })
    const abort = new AbortController()
    let settled = false
    const hung = request(`${emu.apiUrl}/v1/snapshots`, { headers: { authorization: `Bearer ${emu.apiKey}` }, signal: abort.signal }).finally(() => {
      settled = true
    })
    hung.catch(() => undefined)
    await waitUntil(() => emu.requests.length === 1, 'the request to arrive')
    expect((await api(emu, 'GET', '/sandboxes')).status).toBe(200)
    expect(settled).toBe(false)
    abort.abort()
    await expect(hung).rejects.toThrow()
  })

  it('answers 5xx after really creating a snapshot, a sandbox, a build', async () => {
    emu.faults.add(
      { method: 'POST', path: '^/v1/snapshots$', action: { kind: 'status-after', status: 500 } },
      { method: 'POST', path: '^/v1/sandboxes$', action: { kind: 'status-after', status: 502 } },
      { method: 'POST', path: '^/builds$', action: { kind: 'status-after', status: 503 } },
    )
    const snapshots = emu.counts().snapshots.active
    const snapshot = await api(emu, 'POST', '/snapshots', { image: 'busybox', tags: { attempt: 'lost' } })
    expect(snapshot.status).toBe(500)
    expect(emu.counts().snapshots.active).toBe(snapshots + 1)
    expect((await api(emu, 'GET', '/snapshots?tags[attempt]=lost')).json().data).toHaveLength(1)

    const sandbox = await api(emu, 'POST', '/sandboxes', { snapshot_id: snapshotId, tags: { attempt: 'lost' } })
    expect(sandbox.status).toBe(502)
    const orphan = (await api(emu, 'GET', '/sandboxes?tags[attempt]=lost')).json().data[0]
    expect(orphan).toBeDefined()
    await waitUntil(() => emu.sandboxes().find((s) => s.id === orphan.id)?.status === 'running', 'the orphan to run')
    await api(emu, 'POST', `/sandboxes/${orphan.id}/terminate`)

    const submitted = emu.counts().builds.submitted
    const build = await submitBuild(emu, contextArchive({ Dockerfile: 'FROM busybox:latest\nRUN true\n' }))
    expect(build.status).toBe(503)
    expect(emu.counts().builds.submitted).toBe(submitted + 1)
    await waitUntil(() => emu.builds().at(-1)?.state === 'succeeded', 'the orphan build to finish')
    expect(emu.requests.map((r) => r.fault).filter(Boolean)).toEqual(['status-after', 'status-after', 'status-after'])
  })
})

describe('Together emulator faults: build log stream', () => {
  it('answers 404 on the logs for the first N connects (the build pod is not there yet)', async () => {
    const id = await chattyBuild(1)
    emu.faults.add({ method: 'GET', path: '/logs$', times: 2, action: { kind: 'status', status: 404 } })
    expect((await readStream(logsUrl(id), emu.apiKey)).status).toBe(404)
    expect((await readStream(logsUrl(id), emu.apiKey)).status).toBe(404)
    expect((await followBuild(emu, id)).terminal).toEqual({ done: true })
  })

  it('cuts the stream in the middle of a line; the build goes on and a reconnect replays it all', async () => {
    const id = await chattyBuild(2)
    emu.faults.add({ path: '/logs$', action: { kind: 'cut-stream', afterEvents: 3 } })
    const cut = await readStream(logsUrl(id), emu.apiKey)
    expect(cut.error).not.toBeNull()
    expect(sseData(cut.text)).toHaveLength(3)
    const tail = cut.text.split('\n\n').at(-1) as string
    expect(tail.startsWith('data: ')).toBe(true)
    const full = await followBuild(emu, id)
    expect(full.terminal).toEqual({ done: true })
    expect(full.lines.slice(0, 3)).toEqual(sseData(cut.text).map((line) => line.replace(/\x1b\[[0-9;]*m/g, '')))
  })

  it('ends the stream cleanly without done', async () => {
    const id = await chattyBuild(2)
    emu.faults.add({ path: '/logs$', action: { kind: 'end-stream', afterEvents: 2 } })
    const ended = await readStream(logsUrl(id), emu.apiKey)
    expect(ended.error).toBeNull()
    expect(sseData(ended.text)).toHaveLength(2)
    expect(ended.text).not.toContain('"done"')
    expect((await followBuild(emu, id)).terminal).toEqual({ done: true })
  })

  it('sends {"error"} after N lines and really fails the build, killing its RUN', async () => {
    const res = await submitBuild(emu, contextArchive({ Dockerfile: 'FROM busybox:latest\nRUN echo going && sleep 300\n' }), { cache_key: 'error-event' })
    const id = res.json().build_id as string
    await waitUntil(() => emu.builds().find((b) => b.id === id)?.log.some((line) => line.endsWith(' going')) ?? false, 'the RUN to start')
    emu.faults.add({ path: '/logs$', action: { kind: 'error-event', afterEvents: 4, message: 'node drained' } })
    const stream = await readStream(logsUrl(id), emu.apiKey)
    const data = sseData(stream.text)
    expect(data).toHaveLength(5)
    expect(data.at(-1)).toBe('{"error":"node drained"}')
    await waitUntil(() => emu.builds().find((b) => b.id === id)?.state === 'failed', 'the build to fail')
    expect((await call(`${emu.builderUrl}/builds/${id}`, 'GET', { token: emu.apiKey })).json()).toEqual({ build_id: id, status: 'failed', error: 'node drained' })
    await waitUntil(() => emu.counts().processesAlive === 0, 'the RUN to die')
  })

  it('leaves a stream fault pending on a route that does not stream', async () => {
    emu.faults.add({ path: '.*', action: { kind: 'cut-stream', afterEvents: 0 } })
    expect((await api(emu, 'GET', '/snapshots')).status).toBe(200)
    expect(emu.faults.pending()).toHaveLength(1)
    emu.faults.clear()
  })
})

describe('Together emulator faults: sandboxes and execs', () => {
  it('slow start: the sandbox stays starting (wait answers it unsettled) until terminated', async () => {
    emu.faults.add({ method: 'POST', path: '^/v1/sandboxes$', action: { kind: 'slow-start', delayMs: 600_000 } })
    const created = (await api(emu, 'POST', '/sandboxes', { snapshot_id: snapshotId })).json()
    const waited = (await api(emu, 'POST', `/sandboxes/${created.id}/wait`)).json()
    expect(waited).toMatchObject({ status: 'starting', agent: { token: null, url: null } })
    await api(emu, 'POST', `/sandboxes/${created.id}/terminate`)
    await waitUntil(() => emu.sandboxes().find((s) => s.id === created.id)?.status === 'terminated', 'termination')
  })

  it('failed_to_start with its status_reason and no agent', async () => {
    emu.faults.add({ method: 'POST', path: '^/v1/sandboxes$', action: { kind: 'failed-to-start', reason: 'out_of_capacity' } })
    const created = (await api(emu, 'POST', '/sandboxes', { snapshot_id: snapshotId })).json()
    const waited = (await api(emu, 'POST', `/sandboxes/${created.id}/wait`)).json()
    expect(waited).toMatchObject({ status: 'failed_to_start', status_reason: 'out_of_capacity', agent: { version: null, token: null, url: null } })
    expect((await api(emu, 'POST', `/sandboxes/${created.id}/terminate`)).json().status).toBe('failed_to_start')
  })

  it('cuts an exec io stream after N frames; a resume from the last sequence loses and repeats nothing', async () => {
    const sandbox = await runningSandbox(emu, snapshotId)
    // stdout and stderr never share a frame: at least three frames with the exit frame.
    const { frames, id } = await execToEnd(sandbox, 'sh', ['-c', 'echo 1; echo 2 >&2; echo 3; echo 4 >&2'])
    expect(frames.length).toBeGreaterThanOrEqual(3)
    emu.faults.add({ server: 'agent', path: '/stream/execs/', action: { kind: 'cut-stream', afterEvents: 2 } })
    const cut = await readStream(`${sandbox.agent.url}/api/v1/stream/execs/${id}/io`, sandbox.agent.token)
    expect(cut.error).not.toBeNull()
    const got = sseData(cut.text).map((d) => JSON.parse(d))
    expect(got).toEqual(frames.slice(0, 2))
    const rest = sseData((await readStream(`${sandbox.agent.url}/api/v1/stream/execs/${id}/io?lastSequence=${got.at(-1).sequence}`, sandbox.agent.token)).text).map((d) => JSON.parse(d))
    expect([...got, ...rest]).toEqual(frames)

    emu.faults.add({ server: 'agent', path: '/stream/execs/', action: { kind: 'end-stream', afterEvents: 1 } })
    const ended = await readStream(`${sandbox.agent.url}/api/v1/stream/execs/${id}/io`, sandbox.agent.token)
    expect(ended.error).toBeNull()
    expect(sseData(ended.text)).toHaveLength(1)
    await api(emu, 'POST', `/sandboxes/${sandbox.id}/terminate`)
  })
})

describe('Together emulator faults: over HTTP', () => {
  it('takes rules, lists pending and applied, clears; refuses a malformed rule; serves counts', async () => {
    const admin = (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) => call(`${emu.apiUrl}/_emulator${path}`, method, { body })
    const added = await admin('POST', '/faults', [{ path: '^/v1/sandboxes$', action: { kind: 'status', status: 500 } }])
    expect(added.status).toBe(201)
    expect(added.json().pending).toHaveLength(1)
    expect((await api(emu, 'GET', '/sandboxes')).status).toBe(500)
    const listed = (await admin('GET', '/faults')).json()
    expect(listed).toEqual({ pending: [], applied: [{ requestIndex: 0, method: 'GET', path: '/v1/sandboxes', action: { kind: 'status', status: 500 } }] })
    expect((await admin('POST', '/faults', { path: '(', action: { kind: 'hang' } })).status).toBe(400)
    expect((await admin('POST', '/faults', { path: 'x', action: { kind: 'cut-stream' } })).status).toBe(400)
    expect((await admin('POST', '/faults', { path: 'x', action: { kind: 'explode' } })).status).toBe(400)
    expect((await admin('DELETE', '/faults')).status).toBe(204)
    expect((await admin('GET', '/counts')).json()).toEqual(emu.counts())
    const requests = (await admin('GET', '/requests')).json()
    expect(requests).toHaveLength(1)
    expect(requests[0]).toMatchObject({ server: 'api', method: 'GET', path: '/v1/sandboxes', fault: 'status', status: 500 })
  })
})
