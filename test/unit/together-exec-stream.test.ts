/**
 * The exec output follower and the agent client against a scripted agent that numbers its frames and
 * resumes after `lastSequence`, as the agent does: byte-exact output through drops with no frame
 * written twice, a stream that ends while the exec still runs, an exec that exited or vanished.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { RetryPolicy } from '../../src/http/retry.ts'
import { AgentClient } from '../../src/providers/together/agent.ts'
import { ExecLostError, followExecOutput } from '../../src/providers/together/exec-stream.ts'
import { DeadlineExceededError } from '../../src/providers/together/wait-budget.ts'
import type { ExecOutputFrame } from '../../src/providers/together/wire.ts'
import type { OutputSink } from '../../src/providers/types.ts'
import { json, sse, startScriptedServer, type RecordedRequest, type ScriptedServer, type SseStream } from '../helpers/scripted-server.ts'

const EXEC = 'e1'
const servers: ScriptedServer[] = []
afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.close()
})

interface FakeExec {
  frames: ExecOutputFrame[]
  /** What the n-th stream connection does after writing the frames after lastSequence (last one repeats). */
  connections: Array<'end' | 'cut' | { cutAfter: number } | 'hang'>
  /** -1 while running; `null` makes GET /execs/{id} answer 404. */
  exitCode: number | null
  /** Resume as the agent does; false: replay everything on every connection. */
  honoursLastSequence?: boolean
}

async function agentWith(fake: FakeExec): Promise<{ agent: AgentClient; server: ScriptedServer; connectionQueries: Array<string | null> }> {
  let n = 0
  const connectionQueries: Array<string | null> = []
  const server = await startScriptedServer(async (req: RecordedRequest, res) => {
    if (req.path === `/agents/s1/api/v1/execs/${EXEC}`) {
      if (fake.exitCode === null) return json(res, 404, { code: 404, message: 'exec not found' })
      return json(res, 200, { id: EXEC, command: 'sh', args: [], status: fake.exitCode < 0 ? 'RUNNING' : 'EXITED', pid: 7, pty: false, exitCode: fake.exitCode })
    }
    if (req.path !== `/agents/s1/api/v1/stream/execs/${EXEC}/io`) return json(res, 404, { code: 404, message: 'no route' })
    connectionQueries.push(req.query.get('lastSequence'))
    const after = fake.honoursLastSequence === false ? 0 : Number(req.query.get('lastSequence') ?? 0)
    const how = fake.connections[Math.min(n++, fake.connections.length - 1)]
    const stream: SseStream = sse(res)
    const pending = fake.frames.filter((frame) => frame.sequence > after)
    const limit = typeof how === 'object' ? how.cutAfter : pending.length
    for (const frame of pending.slice(0, limit)) await stream.event(JSON.stringify(frame))
    if (how === 'cut' || typeof how === 'object') {
      const next = pending[limit]
      if (next) await stream.cutMidEvent(JSON.stringify(next))
      else res.destroy()
    } else if (how === 'end') {
      stream.end()
    }
  })
  servers.push(server)
  const sleep = async () => undefined
  return { agent: new AgentClient({ url: `${server.url}/agents/s1`, token: 'agent-token', userAgent: 'test', retry: new RetryPolicy({ sleep }), sleep }), server, connectionQueries }
}

function collector(): OutputSink & { bytes: Record<'stdout' | 'stderr', Buffer[]>; text(stream: 'stdout' | 'stderr'): string } {
  const bytes: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] }
  return {
    bytes,
    write: (stream, chunk) => bytes[stream].push(Buffer.from(chunk)),
    text: (stream) => Buffer.concat(bytes[stream]).toString('utf8'),
  }
}

const instant = { sleep: async () => undefined }

/** Output with characters of 1–4 UTF-8 bytes, split over many frames. */
function frames(count: number, exitCode = 0): ExecOutputFrame[] {
  const out: ExecOutputFrame[] = []
  for (let i = 1; i <= count; i++) out.push({ type: i % 3 === 0 ? 'stderr' : 'stdout', output: `line ${i} é€😀\n`, sequence: i })
  out.push({ type: 'stdout', output: '', sequence: count + 1, exitCode })
  return out
}

function expected(all: ExecOutputFrame[], stream: 'stdout' | 'stderr'): string {
  return all
    .filter((frame) => frame.type === stream)
    .map((frame) => frame.output)
    .join('')
}

describe('exec output follower', () => {
  it('writes every frame to its stream and ends on the frame with the exit code', async () => {
    const all = frames(6, 3)
    const { agent, connectionQueries } = await agentWith({ frames: all, connections: ['end'], exitCode: 3 })
    const sink = collector()
    expect(await followExecOutput(agent, EXEC, sink, instant)).toEqual({ exitCode: 3, fromRecord: false, lastSequence: 7 })
    expect(sink.text('stdout')).toBe(expected(all, 'stdout'))
    expect(sink.text('stderr')).toBe(expected(all, 'stderr'))
    expect(connectionQueries).toEqual([null])
  })

  it('resumes after each drop with lastSequence: byte-exact, no frame twice', async () => {
    const all = frames(40)
    const { agent, connectionQueries } = await agentWith({ frames: all, connections: [{ cutAfter: 7 }, { cutAfter: 0 }, { cutAfter: 12 }, 'cut', 'end'], exitCode: 0 })
    const sink = collector()
    expect((await followExecOutput(agent, EXEC, sink, instant)).exitCode).toBe(0)
    expect(sink.text('stdout')).toBe(expected(all, 'stdout'))
    expect(sink.text('stderr')).toBe(expected(all, 'stderr'))
    // The fourth connection delivers the rest, exit frame included.
    expect(connectionQueries).toEqual([null, '7', '7', '19'])
  })

  it('writes nothing twice even when the agent replays from the start', async () => {
    const all = frames(10)
    const { agent } = await agentWith({ frames: all, connections: [{ cutAfter: 4 }, { cutAfter: 8 }, 'end'], exitCode: 0, honoursLastSequence: false })
    const sink = collector()
    await followExecOutput(agent, EXEC, sink, instant)
    expect(sink.text('stdout')).toBe(expected(all, 'stdout'))
    expect(sink.text('stderr')).toBe(expected(all, 'stderr'))
  })

  it('keeps following an exec that still runs when its stream ends cleanly', async () => {
    const fake: FakeExec = { frames: frames(3).slice(0, 3), connections: ['end'], exitCode: -1 }
    const { agent } = await agentWith(fake)
    let rounds = 0
    const sink = collector()
    const done = followExecOutput(agent, EXEC, sink, {
      sleep: async () => {
        // The exec finishes after a dozen quiet reconnects: more than any budget for lost streams.
        if (++rounds === 12) {
          fake.frames.push({ type: 'stdout', output: 'late\n', sequence: 4 }, { type: 'stdout', output: '', sequence: 5, exitCode: 0 })
          fake.exitCode = 0
        }
      },
    })
    expect((await done).exitCode).toBe(0)
    expect(sink.text('stdout')).toBe('line 1 é€😀\nline 2 é€😀\nlate\n')
  })

  it('takes the exit code from the exec when its last frames cannot be streamed', async () => {
    const { agent } = await agentWith({ frames: frames(2).slice(0, 2), connections: ['end'], exitCode: 5 })
    expect(await followExecOutput(agent, EXEC, collector(), instant)).toMatchObject({ exitCode: 5, fromRecord: true })
  })

  it('reports an exec that vanished', async () => {
    const { agent } = await agentWith({ frames: frames(2).slice(0, 2), connections: ['end'], exitCode: null })
    await expect(followExecOutput(agent, EXEC, collector(), instant)).rejects.toThrow(ExecLostError)
  })

  it('ignores a negative exit code: the exec has not exited yet', async () => {
    const all: ExecOutputFrame[] = [
      { type: 'stdout', output: 'a', sequence: 1, exitCode: -1 },
      { type: 'stdout', output: 'b', sequence: 2 },
      { type: 'stdout', output: '', sequence: 3, exitCode: 0 },
    ]
    const { agent } = await agentWith({ frames: all, connections: ['end'], exitCode: 0 })
    const sink = collector()
    await followExecOutput(agent, EXEC, sink, instant)
    expect(sink.text('stdout')).toBe('ab')
  })

  it('stops at the deadline', async () => {
    let now = 0
    const { agent } = await agentWith({ frames: [], connections: ['end'], exitCode: -1 })
    const opts = { now: () => now, sleep: async (ms: number) => void (now += ms), deadline: 10_000 }
    await expect(followExecOutput(agent, EXEC, collector(), opts)).rejects.toThrow(DeadlineExceededError)
  })
})

describe('agent client', () => {
  it('sends the agent token, and kills an exec with DELETE (404: already gone)', async () => {
    const server = await startScriptedServer((req, res) => (req.path.endsWith('/e1') ? json(res, 200, { message: 'deleted' }) : json(res, 404, { code: 404, message: 'exec not found' })))
    servers.push(server)
    const agent = new AgentClient({ url: `${server.url}/agents/s1`, token: 'agent-token', userAgent: 'test' })
    expect(await agent.deleteExec('e1', { timeoutMs: 2000 })).toBe('killed')
    expect(await agent.deleteExec('e2', { timeoutMs: 2000 })).toBe('not-found')
    expect(server.requests.map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
      ['DELETE', '/agents/s1/api/v1/execs/e1', 'Bearer agent-token'],
      ['DELETE', '/agents/s1/api/v1/execs/e2', 'Bearer agent-token'],
    ])
  })

  it('writes files with their path percent-encoded, and repeats a write after a 5xx (it overwrites)', async () => {
    let n = 0
    const server = await startScriptedServer((_req, res) => (n++ === 0 ? json(res, 503, { code: 503, message: 'busy' }) : json(res, 201, { path: '/w/a b', content: '', encoding: 'utf-8' })))
    servers.push(server)
    const sleep = async () => undefined
    const agent = new AgentClient({ url: `${server.url}/agents/s1`, token: 't', userAgent: 'test', retry: new RetryPolicy({ sleep }), sleep })
    await agent.writeFile('/w/a b', async function* () {
      yield Buffer.from('hello')
    }, 5)
    expect(server.requests.map((r) => [r.method, r.path, r.body.toString()])).toEqual([
      ['POST', '/agents/s1/api/v1/files/%2Fw%2Fa%20b', 'hello'],
      ['POST', '/agents/s1/api/v1/files/%2Fw%2Fa%20b', 'hello'],
    ])
  })

  it('creates a missing directory once, and takes an existing one (the agent answers 500 to a second create)', async () => {
    const dirs = new Set<string>(['/exists'])
    const server = await startScriptedServer((req, res) => {
      const target = decodeURIComponent(req.path.replace(/^\/agents\/s1\/api\/v1\/(file_stat|directories)\//, ''))
      if (req.method === 'GET') return dirs.has(target) ? json(res, 200, { name: target, path: target, isDir: true, size: 0, modTime: '' }) : json(res, 404, { code: 404, message: 'no such file' })
      if (dirs.has(target)) return json(res, 500, { code: 500, message: 'mkdir: file exists' })
      dirs.add(target)
      return json(res, 201, { message: 'created', path: target })
    })
    servers.push(server)
    const agent = new AgentClient({ url: `${server.url}/agents/s1`, token: 't', userAgent: 'test' })
    expect(await agent.ensureDirectory('/exists')).toBe('existed')
    expect(await agent.ensureDirectory('/new')).toBe('created')
    expect(server.count('POST', /directories/)).toBe(1)
  })

  it('lists the sandbox\'s open ports', async () => {
    const server = await startScriptedServer((req, res) => json(res, req.path === '/agents/s1/api/v1/ports' ? 200 : 404, { ports: [{ port: 8080, address: '0.0.0.0' }] }))
    servers.push(server)
    const agent = new AgentClient({ url: `${server.url}/agents/s1`, token: 't', userAgent: 'test' })
    expect(await agent.listPorts()).toEqual({ ports: [{ port: 8080, address: '0.0.0.0' }] })
  })
})
