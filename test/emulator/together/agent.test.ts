import { request } from 'undici'
import { describe, expect, it } from 'vitest'
import { freePort } from '../registry.ts'
import type { TogetherEmulator } from './index.ts'
import { agent, api, call, execToEnd, readStream, runningSandbox, sseData, useRunningSandbox, waitUntil } from './test-client.ts'

let emu: TogetherEmulator
let sandbox: any

useRunningSandbox((started, box) => {
  emu = started
  sandbox = box
})

const ioUrl = (id: string, query = '') => `${sandbox.agent.url}/api/v1/stream/execs/${id}/io${query}`

/** Opens an exec's io stream and hands each parsed frame to `onFrame` until it returns true or the stream ends. */
async function followFrames(url: string, onFrame: (frame: any) => boolean | Promise<boolean>): Promise<any[]> {
  const res = await request(url, { headers: { authorization: `Bearer ${sandbox.agent.token}`, accept: 'text/event-stream' } })
  const frames: any[] = []
  let text = ''
  for await (const chunk of res.body) {
    text += (chunk as Buffer).toString('utf8')
    const blocks = text.split('\n\n')
    text = blocks.pop() ?? ''
    for (const data of sseData(blocks.map((b) => b + '\n\n').join(''))) {
      const frame = JSON.parse(data)
      frames.push(frame)
      if (await onFrame(frame)) {
        res.body.destroy()
        return frames
      }
    }
  }
  return frames
}

describe('Together emulator agent: execs', () => {
  it('runs a real process: output frames by stream, numbered from 1, and an exit frame with the exit code', async () => {
    const { frames, id } = await execToEnd(sandbox, 'sh', ['-c', 'echo out; echo err >&2; exit 7'])
    // Two pipes: their relative order is the kernel's business, so each stream is checked on its own.
    expect(frames.filter((f) => f.type === 'stdout' && f.exitCode === undefined).map((f) => f.output)).toEqual(['out\n'])
    expect(frames.filter((f) => f.type === 'stderr').map((f) => f.output)).toEqual(['err\n'])
    expect(frames.map((f) => f.sequence)).toEqual([1, 2, 3])
    expect(frames.at(-1)).toMatchObject({ type: 'stdout', output: '', exitCode: 7 })
    expect(frames.slice(0, -1).every((f) => f.exitCode === undefined && typeof f.timestamp === 'string')).toBe(true)
    const item = (await agent(sandbox, 'GET', `/execs/${id}`)).json()
    expect(item).toMatchObject({ id, command: 'sh', args: ['-c', 'echo out; echo err >&2; exit 7'], status: 'EXITED', pty: false, exitCode: 7 })
    expect(item.pid).toBeGreaterThan(0)
    expect((await agent(sandbox, 'GET', `/execs/${id}/io`)).json()).toEqual(frames)
  })

  it('streams output while the process still runs', async () => {
    const created = (await agent(sandbox, 'POST', '/execs', { command: 'sh', args: ['-c', 'echo first; exec sleep 300'] })).json()
    expect(created).toMatchObject({ status: 'RUNNING', exitCode: -1 })
    const frames = await followFrames(ioUrl(created.id), (frame) => frame.output === 'first\n')
    expect(frames).toEqual([expect.objectContaining({ output: 'first\n', sequence: 1 })])
    expect((await agent(sandbox, 'GET', `/execs/${created.id}`)).json().status).toBe('RUNNING')
    expect(emu.counts().execsRunning).toBeGreaterThan(0)
    expect((await agent(sandbox, 'DELETE', `/execs/${created.id}`)).json()).toEqual({ message: 'Exec deleted successfully' })
    expect((await agent(sandbox, 'GET', `/execs/${created.id}`)).status).toBe(404)
  })

  it('resumes after lastSequence without duplicates; a negative lastSequence counts back from the newest frame', async () => {
    // stdout and stderr never share a frame, so this gives at least three (with the exit frame).
    const { frames, id } = await execToEnd(sandbox, 'sh', ['-c', 'for i in 1 2 3; do echo out$i; echo err$i >&2; done'])
    expect(frames.length).toBeGreaterThanOrEqual(3)
    const all = frames.map((f) => f.sequence)
    const after2 = sseData((await readStream(ioUrl(id, '?lastSequence=2'), sandbox.agent.token)).text).map((d) => JSON.parse(d))
    expect(after2.map((f) => f.sequence)).toEqual(all.filter((s) => s > 2))
    expect([...frames.filter((f) => f.sequence <= 2), ...after2]).toEqual(frames)
    const lastTwo = sseData((await readStream(ioUrl(id, '?lastSequence=-2'), sandbox.agent.token)).text).map((d) => JSON.parse(d))
    expect(lastTwo).toEqual(frames.slice(-2))
    const fromZero = sseData((await readStream(ioUrl(id, '?lastSequence=0'), sandbox.agent.token)).text)
    expect(fromZero).toHaveLength(frames.length)
    const pastTheEnd = await readStream(ioUrl(id, `?lastSequence=${all.at(-1)}`), sandbox.agent.token)
    expect(sseData(pastTheEnd.text)).toEqual([])
    expect((await agent(sandbox, 'GET', `/execs/${id}/io?lastSequence=3`)).json()).toEqual(frames.filter((f) => f.sequence > 3))
    expect((await readStream(ioUrl(id, '?lastSequence=abc'), sandbox.agent.token)).status).toBe(400)
  })

  it('resumes a live stream: frames after the last one seen, then the rest as it comes', async () => {
    const created = (await agent(sandbox, 'POST', '/execs', { command: 'sh', args: ['-c', 'echo a; echo b; read line; echo "got $line"'] })).json()
    const first = await followFrames(ioUrl(created.id), (frame) => frame.output.includes('b'))
    const lastSeen = first.at(-1).sequence
    await agent(sandbox, 'POST', `/execs/${created.id}/io`, { type: 'stdin', input: 'hello' })
    const rest = await followFrames(ioUrl(created.id, `?lastSequence=${lastSeen}`), () => false)
    expect([...first, ...rest].map((f) => f.output).join('')).toBe('a\nb\ngot hello\n')
    expect(new Set([...first, ...rest].map((f) => f.sequence)).size).toBe(first.length + rest.length)
    expect(rest.at(-1).exitCode).toBe(0)
  })

  it('starts an exec created with autostart false; start is idempotent while running and 409 once exited', async () => {
    const created = (await agent(sandbox, 'POST', '/execs', { command: 'echo', args: ['later'], autostart: false })).json()
    expect(created).toMatchObject({ status: 'CREATED', pid: 0, exitCode: -1 })
    const listed = (await agent(sandbox, 'GET', '/execs')).json().execs
    expect(listed[0].id).toBe(created.id)
    expect((await agent(sandbox, 'POST', `/execs/${created.id}/start`, {})).status).toBe(200)
    const frames = sseData((await readStream(ioUrl(created.id), sandbox.agent.token)).text).map((d) => JSON.parse(d))
    expect(frames.map((f) => f.output).join('')).toBe('later\n')
    expect((await agent(sandbox, 'POST', `/execs/${created.id}/start`, {})).status).toBe(409)
  })

  it('honours cwd, env and user; defaults to 1000:1000 in /', async () => {
    const shown = await execToEnd(sandbox, 'sh', ['-c', 'echo "$(pwd) $MY_VAR $(id -u):$(id -g)"'], { cwd: '/tmp', env: { MY_VAR: 'v' }, user: 'app:root' })
    expect(shown.frames[0].output).toBe('/tmp v 1000:0\n')
    expect((await agent(sandbox, 'GET', `/execs/${shown.id}`)).json().user).toBe('1000:0')
    const defaults = await execToEnd(sandbox, 'sh', ['-c', 'echo "$(pwd) $(id -u):$(id -g)"'])
    expect(defaults.frames[0].output).toBe('/ 1000:1000\n')
    expect((await agent(sandbox, 'GET', `/execs/${defaults.id}`)).json().user).toBeUndefined()
    expect((await agent(sandbox, 'POST', '/execs', { command: 'true', args: [], user: 'nosuchuser' })).status).toBe(400)
    const missingCwd = await agent(sandbox, 'POST', '/execs', { command: 'true', args: [], cwd: '/does/not/exist' })
    expect(missingCwd.status).toBe(500)
    expect(missingCwd.json()).toEqual({ code: 500, message: 'chdir /does/not/exist: no such file or directory' })
  })

  it('refuses bad exec requests', async () => {
    for (const body of [{ command: 'echo' }, { args: [] }, { command: 'echo', args: 'x' }, { command: 'echo', args: [], env: { A: 1 } }, { command: 'echo', args: [], shell: true }, { command: 'sh', args: [], pty: true }]) {
      const res = await agent(sandbox, 'POST', '/execs', body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.json()).toEqual({ code: 400, message: expect.any(String) })
    }
    expect((await agent(sandbox, 'GET', '/execs/nope')).status).toBe(404)
  })
})

describe('Together emulator agent: files and ports', () => {
  it('creates, reads (utf-8 or base64), stats and deletes files; raw bodies; never creates parents', async () => {
    const written = await agent(sandbox, 'POST', `/files/${encodeURIComponent('/tmp/hello.txt')}`, 'Hello 世界', { 'content-type': 'application/octet-stream' })
    expect(written.status).toBe(201)
    expect(written.json()).toEqual({ path: '/tmp/hello.txt', content: 'Hello 世界', encoding: 'utf-8' })
    expect((await agent(sandbox, 'GET', '/files/tmp/hello.txt')).json().content).toBe('Hello 世界')
    const binary = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff])
    await agent(sandbox, 'POST', '/files/tmp/bin.dat', binary)
    expect((await agent(sandbox, 'GET', '/files/tmp/bin.dat')).json()).toEqual({ path: '/tmp/bin.dat', content: binary.toString('base64'), encoding: 'base64' })
    const stat = (await agent(sandbox, 'GET', '/file_stat/tmp/bin.dat')).json()
    expect(stat).toMatchObject({ name: 'bin.dat', path: '/tmp/bin.dat', isDir: false, size: 6 })
    const seen = await execToEnd(sandbox, 'cat', ['/tmp/hello.txt'])
    expect(seen.frames[0].output).toBe('Hello 世界')
    const orphan = await agent(sandbox, 'POST', '/files/tmp/missing-dir/x.txt', 'x')
    expect(orphan.status).toBe(500)
    expect(orphan.json().message).toContain('no such file or directory')
    expect((await agent(sandbox, 'DELETE', '/files/tmp/hello.txt')).status).toBe(200)
    expect((await agent(sandbox, 'GET', '/files/tmp/hello.txt')).status).toBe(404)
    expect((await agent(sandbox, 'DELETE', '/files/tmp/hello.txt')).status).toBe(404)
    expect((await agent(sandbox, 'GET', '/file_stat/tmp/nothing')).status).toBe(404)
  })

  it('creates, lists and deletes directories one level at a time', async () => {
    expect((await agent(sandbox, 'POST', '/directories/tmp/a/b')).status).toBe(500)
    expect((await agent(sandbox, 'POST', '/directories/tmp/a')).status).toBe(201)
    expect((await agent(sandbox, 'POST', '/directories/tmp/a')).json()).toEqual({ code: 500, message: 'mkdir /tmp/a: file exists' })
    expect((await agent(sandbox, 'POST', '/directories/tmp/a/b')).status).toBe(201)
    await agent(sandbox, 'POST', '/files/tmp/a/f.txt', 'f')
    const listed = (await agent(sandbox, 'GET', '/directories/tmp/a')).json()
    expect(listed.path).toBe('/tmp/a')
    expect(listed.files.map((f: any) => [f.name, f.isDir])).toEqual([
      ['b', true],
      ['f.txt', false],
    ])
    expect((await agent(sandbox, 'DELETE', '/files/tmp/a')).status).toBe(400)
    expect((await agent(sandbox, 'DELETE', '/directories/tmp/a')).status).toBe(200)
    expect((await agent(sandbox, 'GET', '/directories/tmp/a')).status).toBe(404)
  })

  it('moves and copies files', async () => {
    await agent(sandbox, 'POST', '/files/tmp/m.txt', 'm')
    expect((await agent(sandbox, 'PATCH', '/files/tmp/m.txt', { action: 'copy', destination: '/tmp/c.txt' })).json()).toEqual({
      message: 'File copied successfully',
      from: '/tmp/m.txt',
      to: '/tmp/c.txt',
    })
    expect((await agent(sandbox, 'PATCH', '/files/tmp/m.txt', { action: 'move', destination: '/tmp/n.txt' })).status).toBe(200)
    expect((await agent(sandbox, 'GET', '/files/tmp/n.txt')).json().content).toBe('m')
    expect((await agent(sandbox, 'GET', '/files/tmp/m.txt')).status).toBe(404)
    expect((await agent(sandbox, 'PATCH', '/files/tmp/n.txt', { action: 'rename', destination: '/tmp/x' })).status).toBe(400)
  })

  it('lists the TCP ports its processes listen on', async () => {
    const port = await freePort()
    const server = (await agent(sandbox, 'POST', '/execs', { command: 'busybox', args: ['httpd', '-f', '-p', `127.0.0.1:${port}`] })).json()
    await waitUntil(async () => (await agent(sandbox, 'GET', '/ports')).json().ports.some((p: any) => p.port === port), 'the port to open')
    expect((await agent(sandbox, 'GET', '/ports')).json().ports).toContainEqual({ port, address: '127.0.0.1' })
    await agent(sandbox, 'DELETE', `/execs/${server.id}`)
    await waitUntil(async () => !(await agent(sandbox, 'GET', '/ports')).json().ports.some((p: any) => p.port === port), 'the port to close')
  })
})

describe('Together emulator agent: access', () => {
  it('wants the sandbox own token: none, the API key and another sandbox token are all refused', async () => {
    const other = await runningSandbox(emu, sandbox.snapshot_id)
    for (const token of [null, emu.apiKey, other.agent.token]) {
      const res = await call(`${sandbox.agent.url}/api/v1/execs`, 'GET', { token })
      expect(res.status).toBe(401)
      expect(res.json()).toEqual({ code: 401, message: 'missing or invalid agent token' })
    }
    expect((await call(`${emu.agentsUrl}/agents/00000000-0000-4000-8000-000000000000/api/v1/execs`, 'GET', { token: 'x' })).status).toBe(404)
    await api(emu, 'POST', `/sandboxes/${other.id}/terminate`)
    await api(emu, 'POST', `/sandboxes/${other.id}/wait`)
    expect((await call(`${other.agent.url}/api/v1/execs`, 'GET', { token: other.agent.token })).status).toBe(502)
  })

  it('cuts an open exec stream when its sandbox terminates, and its processes die', async () => {
    const doomed = await runningSandbox(emu, sandbox.snapshot_id)
    const exec = (await call(`${doomed.agent.url}/api/v1/execs`, 'POST', { token: doomed.agent.token, body: { command: 'sh', args: ['-c', 'echo up; exec sleep 300'] } })).json()
    const reading = readStream(`${doomed.agent.url}/api/v1/stream/execs/${exec.id}/io`, doomed.agent.token)
    await waitUntil(() => emu.sandboxes().find((s) => s.id === doomed.id)?.execs[0]?.status === 'RUNNING', 'the exec to run')
    await api(emu, 'POST', `/sandboxes/${doomed.id}/terminate`)
    const stream = await reading
    expect(stream.error).not.toBeNull()
    expect(sseData(stream.text).map((d) => JSON.parse(d)).some((f) => f.exitCode !== undefined)).toBe(false)
    await api(emu, 'POST', `/sandboxes/${doomed.id}/wait`)
    await waitUntil(() => emu.sandboxes().find((s) => s.id === doomed.id)?.status === 'terminated', 'termination')
  })
})
