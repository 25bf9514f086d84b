/**
 * The follower and the watcher against a small fake ConTree server defined here: scripted event
 * streams (gzip, sync-flushed per frame like the real service), an operation record whose status
 * moves along a list, and every request recorded.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { constants as zlib, createGzip, gzipSync, type Gzip } from 'node:zlib'
import { Agent } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { HttpClient } from '../../src/http/client.ts'
import { HttpError } from '../../src/http/errors.ts'
import { RetryPolicy } from '../../src/http/retry.ts'
import { ContreeApi } from '../../src/providers/contree/api.ts'
import { followOperation, FollowTimeoutError, type FollowOptions } from '../../src/providers/contree/follow.ts'
import { watchOperation } from '../../src/providers/contree/watch.ts'
import type { OperationEvent, OperationResponse } from '../../src/providers/contree/wire.ts'

const OP = 'op-1'

interface EventStream {
  frame(event: WireEvent): Promise<void>
  raw(text: string): Promise<void>
  comment(text?: string): Promise<void>
  sseError(): Promise<void>
  /** Ends the HTTP response cleanly (gzip trailer included). */
  end(): void
  /** Closes the socket without the terminal chunk: broken chunked framing. */
  breakFraming(): void
  /** Ends the HTTP response cleanly but the gzip stream without its trailer. */
  truncateGzip(): void
  /** Never ends. */
  hang(): void
}

interface WireEvent {
  id: number
  type: string
  spid?: number
  data: Record<string, unknown>
}

type EventsStep = ((s: EventStream, ctx: { lastEventId: number | undefined; follow: boolean }) => Promise<void> | void) | { status: number; body?: unknown; headers?: Record<string, string> }

interface Fake {
  url: string
  log: string[]
  api: ContreeApi
  sleeps: number[]
}

const closers: Array<() => Promise<void>> = []
afterEach(async () => {
  while (closers.length > 0) await closers.pop()?.()
})

function ev(id: number, type: string, data: Record<string, unknown> = {}, spid?: number): WireEvent {
  return { id, type, data, spid: spid ?? (type === 'init' || type === 'completion' ? 0 : 1) }
}
const out = (id: number, text: string, spid = 1): WireEvent => ev(id, 'stdout', { value: text, encoding: 'ascii' }, spid)
const err = (id: number, text: string, spid = 1): WireEvent => ev(id, 'stderr', { value: text, encoding: 'ascii' }, spid)
const bin = (id: number, bytes: Uint8Array, stream = 'stdout'): WireEvent => ev(id, stream, { value: Buffer.from(bytes).toString('base64'), encoding: 'base64' })
const exit = (id: number, code: number, extra: Record<string, unknown> = {}): WireEvent => ev(id, 'exit', { pid: 7, code, signal: -1, timed_out: false, duration_ms: 5, ...extra })
const done = (id: number, status = 'SUCCESS', extra: Record<string, unknown> = {}): WireEvent =>
  ev(id, 'completion', { status, duration_ms: 1234, result_image_uuid: 'img-9', error: null, ...extra })

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = gzipSync(JSON.stringify(body))
  res.writeHead(status, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': payload.length, ...headers })
  res.end(payload)
}

function streamWriter(res: ServerResponse): EventStream {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip', 'cache-control': 'no-cache' })
  const gzip: Gzip = createGzip()
  gzip.on('data', (chunk: Buffer) => res.write(chunk))
  const write = (text: string): Promise<void> =>
    new Promise((resolve) => {
      gzip.write(text)
      gzip.flush(zlib.Z_SYNC_FLUSH, () => resolve())
    })
  return {
    frame: (event) => write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify({ ts: '2026-06-08T20:00:00.1Z', ...event })}\n\n`),
    raw: write,
    comment: (text = 'keepalive') => write(`: ${text}\n\n`),
    sseError: () => write(': stream ended with error, retry since last event id\n\nevent: sse_error\ndata: upstream event source closed unexpectedly\n\n'),
    end: () => {
      gzip.end()
      gzip.on('end', () => res.end())
    },
    // Flushed gzip output reaches `res` on a later tick; let it go out before cutting the connection.
    breakFraming: () => setImmediate(() => res.socket?.destroySoon()),
    truncateGzip: () => setImmediate(() => res.end()),
    hang: () => undefined,
  }
}

async function startFake(opts: {
  events: EventsStep[]
  statuses?: string[]
  record?: Partial<OperationResponse>
  getFailures?: number[]
  eventsIdleTimeoutMs?: number
}): Promise<Fake> {
  const log: string[] = []
  let eventsCalls = 0
  let getCalls = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === `/v1/operations/${OP}/events`) {
      const lei = req.headers['last-event-id']
      const follow = url.searchParams.get('follow') === '1'
      log.push(`events${follow ? ' follow' : ''}${lei === undefined ? '' : ` lei=${String(lei)}`}`)
      const step = opts.events[Math.min(eventsCalls++, opts.events.length - 1)]
      if (step === undefined) return sendJson(res, 500, { error: 'no script' })
      if (typeof step !== 'function') return sendJson(res, step.status, step.body ?? { error: `HTTP ${step.status}` }, step.headers)
      void step(streamWriter(res), { lastEventId: lei === undefined ? undefined : Number(lei), follow })
      return
    }
    if (url.pathname === `/v1/operations/${OP}` && req.method === 'GET') {
      const call = getCalls++
      log.push('get')
      const failure = opts.getFailures?.[call]
      if (failure !== undefined) return sendJson(res, failure, { error: 'flaky' })
      const statuses = opts.statuses ?? ['SUCCESS']
      const status = statuses[Math.min(call, statuses.length - 1)]
      return sendJson(res, 200, { uuid: OP, kind: 'instance', status, duration: 1.5, error: null, result_image_uuid: 'img-rec', ...opts.record })
    }
    sendJson(res, 404, { error: `no route for ${req.method} ${url.pathname}` })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const dispatcher = new Agent()
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
    () => dispatcher.close(),
  )
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const sleeps: number[] = []
  // Records instead of waiting, but still yields to the event loop like a real sleep would.
  const sleep = async (ms: number): Promise<void> => {
    sleeps.push(ms)
    await new Promise((resolve) => setImmediate(resolve))
  }
  const http = new HttpClient({ baseUrl: url, dispatcher, sleep, retry: new RetryPolicy({ maxAttempts: 1, sleep }) })
  const idle = opts.eventsIdleTimeoutMs === undefined ? {} : { eventsIdleTimeoutMs: opts.eventsIdleTimeoutMs }
  return { url, log, api: new ContreeApi({ baseUrl: url, userAgent: 'test', http, ...idle }), sleeps }
}

async function follow(fake: Fake, opts: FollowOptions = {}): Promise<OperationEvent[]> {
  const events: OperationEvent[] = []
  const sleep = async (ms: number): Promise<void> => {
    fake.sleeps.push(ms)
    await new Promise((resolve) => setImmediate(resolve))
  }
  for await (const event of followOperation(fake.api, OP, { sleep, ...opts })) events.push(event)
  return events
}

const ids = (events: OperationEvent[]): number[] => events.map((e) => e.id)
const types = (events: OperationEvent[]): string[] => events.map((e) => e.type)

describe('followOperation', () => {
  it('yields a whole stream and stops at completion without a status GET', async () => {
    const fake = await startFake({
      events: [
        async (s) => {
          await s.comment()
          for (const e of [ev(0, 'init'), ev(1, 'spawn'), out(2, 'hi\n'), exit(3, 0), done(4)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const events = await follow(fake)
    expect(types(events)).toEqual(['init', 'spawn', 'stdout', 'exit', 'completion'])
    expect(ids(events)).toEqual([0, 1, 2, 3, 4])
    expect(events[4]?.data).toMatchObject({ status: 'SUCCESS', duration_ms: 1234, result_image_uuid: 'img-9' })
    expect(fake.log).toEqual(['events follow'])
    expect(fake.sleeps).toEqual([])
  })

  it('resumes after sse_error with Last-Event-Id and drops replayed duplicates', async () => {
    const fake = await startFake({
      statuses: ['EXECUTING'],
      events: [
        async (s) => {
          await s.frame(ev(0, 'init'))
          await s.frame(ev(1, 'spawn'))
          await s.sseError()
          s.end()
        },
        async (s) => {
          // A sloppy server replays from the start; the follower must skip what it has seen.
          for (const e of [ev(0, 'init'), ev(1, 'spawn'), exit(2, 0), done(3)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const events = await follow(fake)
    expect(ids(events)).toEqual([0, 1, 2, 3])
    expect(fake.log).toEqual(['events follow', 'get', 'events follow lei=1'])
    // It made progress, so no floor sleep.
    expect(fake.sleeps).toEqual([])
  })

  it.each([
    ['cut mid-frame with broken chunked framing', (s: EventStream) => s.raw('id: 2\nevent: stdout\ndata: {"id":2,"ty').then(() => s.breakFraming())],
    ['a truncated gzip stream', (s: EventStream) => s.truncateGzip()],
    ['malformed JSON data', (s: EventStream) => s.raw('id: 2\nevent: stdout\ndata: invalid json\n\n').then(() => s.end())],
    ['a clean EOF without completion', (s: EventStream) => s.end()],
  ])('reconnects after %s with no loss and no duplicates', async (_name, breakIt) => {
    const fake = await startFake({
      statuses: ['EXECUTING'],
      events: [
        async (s) => {
          await s.frame(ev(0, 'init'))
          await s.frame(out(1, 'a'))
          await breakIt(s)
        },
        async (s, ctx) => {
          expect(ctx.lastEventId).toBe(1)
          for (const e of [out(2, 'b'), exit(3, 0), done(4)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const events = await follow(fake)
    expect(ids(events)).toEqual([0, 1, 2, 3, 4])
    expect(fake.log).toEqual(['events follow', 'get', 'events follow lei=1'])
  })

  it('sleeps the 0.5 s floor when a cycle made no progress, and never gives up while running', async () => {
    const fake = await startFake({
      statuses: ['EXECUTING'],
      events: [
        async (s) => {
          await s.comment()
          s.end()
        },
        async (s) => {
          await s.comment()
          s.breakFraming()
        },
        async (s) => {
          for (const e of [ev(0, 'init'), done(1)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const events = await follow(fake)
    expect(ids(events)).toEqual([0, 1])
    expect(fake.sleeps).toEqual([500, 500])
    expect(fake.log).toEqual(['events follow', 'get', 'events follow', 'get', 'events follow'])
  })

  it('honours Retry-After and the ladder for 410/425/429/5xx on the events route', async () => {
    const fake = await startFake({
      statuses: ['EXECUTING'],
      events: [
        { status: 410, body: { error: 'operation finished; events not yet durable' }, headers: { 'retry-after': '3' } },
        { status: 503 },
        { status: 429 },
        async (s) => {
          for (const e of [ev(0, 'init'), done(1)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const events = await follow(fake)
    expect(ids(events)).toEqual([0, 1])
    expect(fake.sleeps).toEqual([3000, 500, 500])
    expect(fake.log).toEqual(['events follow', 'get', 'events follow', 'get', 'events follow', 'get', 'events follow'])
  })

  it('drains the retained log without follow once the probe says terminal', async () => {
    const fake = await startFake({
      statuses: ['SUCCESS'],
      events: [
        async (s) => {
          await s.frame(ev(0, 'init'))
          await s.frame(out(1, 'x'))
          s.breakFraming()
        },
        async (s, ctx) => {
          expect(ctx.follow).toBe(false)
          for (const e of [ev(0, 'init'), out(1, 'x'), out(2, 'y'), exit(3, 7), done(4, 'SUCCESS')]) await s.frame(e)
          s.end()
        },
      ],
    })
    const events = await follow(fake)
    expect(ids(events)).toEqual([0, 1, 2, 3, 4])
    expect(fake.log).toEqual(['events follow', 'get', 'events lei=1'])
  })

  it('accepts a drained log that ends without completion, and retries a broken drain a bounded number of times', async () => {
    const clean = await startFake({
      statuses: ['FAILED'],
      events: [
        async (s) => s.breakFraming(),
        async (s) => {
          await s.frame(exit(0, 1))
          s.end()
        },
      ],
    })
    expect(ids(await follow(clean))).toEqual([0])
    expect(clean.log).toEqual(['events follow', 'get', 'events'])

    const broken = await startFake({ statuses: ['FAILED'], events: [async (s) => s.breakFraming(), { status: 500 }] })
    expect(await follow(broken, { drainAttempts: 3 })).toEqual([])
    expect(broken.log).toEqual(['events follow', 'get', 'events', 'events', 'events'])
    expect(broken.sleeps).toEqual([500, 500])
  })

  it('never cuts short a drain that keeps making progress, however often it breaks', async () => {
    // Each retained-log read delivers one more event, then breaks: more breaks than drainAttempts.
    // Let each frame reach the client before the cut, so every read really makes progress.
    const settle = () => new Promise((resolve) => setTimeout(resolve, 20))
    const drainStep = (id: number) => async (s: EventStream) => {
      await s.frame(out(id, `part ${id}\n`))
      await settle()
      s.breakFraming()
    }
    const fake = await startFake({
      statuses: ['SUCCESS'],
      events: [
        async (s) => {
          await s.frame(out(0, 'part 0\n'))
          await settle()
          s.breakFraming()
        },
        drainStep(1),
        drainStep(2),
        drainStep(3),
        drainStep(4),
        async (s) => {
          for (const e of [exit(5, 0), done(6)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const events = await follow(fake, { drainAttempts: 2 })
    expect(ids(events)).toEqual([0, 1, 2, 3, 4, 5, 6])
    expect(fake.log).toEqual(['events follow', 'get', 'events lei=0', 'events lei=1', 'events lei=2', 'events lei=3', 'events lei=4'])
  })

  it('treats a silent stream (a half-open connection) as broken and resumes it', async () => {
    const fake = await startFake({
      statuses: ['EXECUTING'],
      eventsIdleTimeoutMs: 200,
      events: [
        async (s) => {
          await s.frame(out(0, 'before the silence\n'))
          s.hang()
        },
        async (s, ctx) => {
          expect(ctx.lastEventId).toBe(0)
          for (const e of [out(1, 'after\n'), exit(2, 0), done(3)]) await s.frame(e)
          s.end()
        },
      ],
    })
    expect(ids(await follow(fake))).toEqual([0, 1, 2, 3])
    expect(fake.log).toEqual(['events follow', 'get', 'events follow lei=0'])
  })

  it('falls back to polling when the events route is unavailable and synthesizes one completion', async () => {
    const fake = await startFake({
      statuses: ['EXECUTING', 'EXECUTING', 'SUCCESS'],
      record: { duration: 2.5, result_image_uuid: null, result: { image: 'img-from-result' }, image_size: 42 },
      events: [{ status: 404, body: { error: 'no route' } }],
    })
    const events = await follow(fake)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({
      id: 0,
      type: 'completion',
      synthetic: true,
      data: { status: 'SUCCESS', duration_ms: 2500, result_image_uuid: 'img-from-result', error: null, image_size_bytes: 42 },
    })
    expect(fake.log).toEqual(['events follow', 'get', 'get', 'get'])
    expect(fake.sleeps).toEqual([100, 200])
  })

  it('counts transient probe failures as "not terminal"', async () => {
    const fake = await startFake({
      statuses: ['EXECUTING'],
      getFailures: [503],
      events: [
        async (s) => {
          await s.frame(ev(0, 'init'))
          s.breakFraming()
        },
        async (s) => {
          await s.frame(done(1))
          s.end()
        },
      ],
    })
    expect(ids(await follow(fake))).toEqual([0, 1])
    expect(fake.log).toEqual(['events follow', 'get', 'events follow lei=0'])
  })

  it.each([401, 403, 409, 422])('fails at once on HTTP %i', async (status) => {
    const fake = await startFake({ events: [{ status, body: { error: 'nope' } }] })
    const error = await follow(fake).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HttpError)
    expect((error as HttpError).status).toBe(status)
    expect(fake.log).toEqual(['events follow'])
  })

  it('translates the older completion field names', async () => {
    const fake = await startFake({
      events: [
        async (s) => {
          await s.frame(ev(0, 'completion', { status: 'SUCCESS', duration: 0.25, result_image: 'img-old' }))
          s.end()
        },
      ],
    })
    const [completion] = await follow(fake)
    expect(completion?.data).toMatchObject({ duration_ms: 250, result_image_uuid: 'img-old' })
  })

  it('passes unknown event types through and resumes after a caller-given id', async () => {
    const fake = await startFake({
      events: [
        async (s, ctx) => {
          expect(ctx.lastEventId).toBe(4)
          for (const e of [ev(5, 'network', { interfaces: [] }), ev(6, 'brand_new', { x: 1 }), done(7)]) await s.frame(e)
          s.end()
        },
      ],
    })
    expect(types(await follow(fake, { lastEventId: 4 }))).toEqual(['network', 'brand_new', 'completion'])
  })

  it('enforces the deadline even while keepalives keep arriving and streams keep breaking', async () => {
    let clock = 0
    const fake = await startFake({
      statuses: ['EXECUTING'],
      events: [
        async (s) => {
          await s.comment()
          clock += 400
          await s.comment()
          s.breakFraming()
        },
      ],
    })
    const error = await follow(fake, {
      now: () => clock,
      deadline: 2000,
      sleep: async (ms) => {
        fake.sleeps.push(ms)
        clock += ms
        await new Promise((resolve) => setImmediate(resolve))
      },
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(FollowTimeoutError)
    expect((error as Error).message).toContain(OP)
  })

  it('ends a silent stream at the deadline', async () => {
    const fake = await startFake({
      events: [
        async (s) => {
          await s.comment()
          s.hang()
        },
      ],
    })
    await expect(follow(fake, { deadline: performance.now() + 150 })).rejects.toBeInstanceOf(FollowTimeoutError)
  })

  it('stops at once on abort with the caller’s reason', async () => {
    const fake = await startFake({
      events: [
        async (s) => {
          await s.frame(ev(0, 'init'))
          s.hang()
        },
      ],
    })
    const controller = new AbortController()
    const seen: number[] = []
    const run = (async () => {
      for await (const event of followOperation(fake.api, OP, { signal: controller.signal })) {
        seen.push(event.id)
        controller.abort(new Error('cancelled by the job'))
      }
    })()
    await expect(run).rejects.toThrow('cancelled by the job')
    expect(seen).toEqual([0])
  })
})

class Sink {
  readonly chunks: Array<['stdout' | 'stderr', Buffer]> = []
  write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    this.chunks.push([stream, Buffer.from(chunk)])
  }
  text(stream: 'stdout' | 'stderr'): Buffer {
    return Buffer.concat(this.chunks.filter(([s]) => s === stream).map(([, c]) => c))
  }
}

/** A log whose reader takes its time: full past CAPACITY queued bytes, drained a turn of the event loop later. */
class SlowLog extends Sink {
  static readonly CAPACITY = 256 * 1024
  queued = 0
  mostQueued = 0
  override write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    super.write(stream, chunk)
    this.queued += chunk.byteLength
    this.mostQueued = Math.max(this.mostQueued, this.queued)
  }
  ready(): Promise<void> | undefined {
    if (this.queued < SlowLog.CAPACITY) return undefined
    return new Promise((resolve) =>
      setImmediate(() => {
        this.queued = 0
        resolve()
      }),
    )
  }
}

describe('watchOperation', () => {
  const binary = Uint8Array.from([0, 255, 254, 0xe2, 0x82, 10, 13, 7])

  it('streams the main process output byte-exactly across a reconnect, with no status GET', async () => {
    const fake = await startFake({
      statuses: ['EXECUTING'],
      events: [
        async (s) => {
          for (const e of [ev(0, 'init'), ev(1, 'spawn'), out(2, 'line 1\n'), bin(3, binary), ev(4, 'spawn', {}, 2), out(5, 'subprocess\n', 2)]) await s.frame(e)
          await s.raw('id: 6\nevent: stderr\ndata: {"id":6,"type":"std')
          s.breakFraming()
        },
        async (s) => {
          for (const e of [err(6, 'warn\n'), out(7, 'line 2\n'), exit(8, 3), ev(9, 'shutdown', { reason: 'job_complete' }, 0), done(10)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const sink = new Sink()
    const outcome = await watchOperation(fake.api, OP, sink, { sleep: () => new Promise((resolve) => setImmediate(resolve)) })
    expect(sink.text('stdout')).toEqual(Buffer.concat([Buffer.from('line 1\n'), binary, Buffer.from('line 2\n')]))
    expect(sink.text('stderr').toString()).toBe('warn\n')
    expect(sink.chunks.map(([s]) => s)).toEqual(['stdout', 'stdout', 'stderr', 'stdout'])
    expect(outcome).toEqual({ operationId: OP, status: 'SUCCESS', exitCode: 3, timedOut: false, error: null, resultImage: 'img-9', durationMs: 1234 })
    expect(fake.log).toEqual(['events follow', 'get', 'events follow lei=5'])
  })

  it('writes the captured output from the record when nothing was streamed', async () => {
    const fake = await startFake({
      record: {
        status: 'SUCCESS',
        metadata: {
          command: 'x',
          image: 'i',
          result: { state: { exit_code: 0 }, stdout: { value: Buffer.from(binary).toString('base64'), encoding: 'base64' }, stderr: { value: 'oops\n', encoding: 'ascii' } },
        },
      },
      events: [
        async (s) => {
          for (const e of [ev(0, 'init'), exit(1, 0), done(2)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const sink = new Sink()
    const outcome = await watchOperation(fake.api, OP, sink)
    expect(sink.text('stdout')).toEqual(Buffer.from(binary))
    expect(sink.text('stderr').toString()).toBe('oops\n')
    expect(outcome.exitCode).toBe(0)
    expect(fake.log).toEqual(['events follow', 'get'])
  })

  it('writes a large record a slice at a time, waiting for the log in between', async () => {
    // Found by the chaos test (seed 1077): megabytes from the record queued at once for a slow log
    // reader were still queued when the process ended, and the end of the output was lost.
    const captured = Buffer.alloc(3 * 1024 * 1024, 'record text\n')
    const fake = await startFake({
      record: { status: 'SUCCESS', metadata: { command: 'x', image: 'i', result: { state: { exit_code: 0 }, stdout: { value: captured.toString('base64'), encoding: 'base64' } } } },
      events: [
        async (s) => {
          for (const e of [ev(0, 'init'), exit(1, 0), done(2)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const sink = new SlowLog()
    await watchOperation(fake.api, OP, sink)
    expect(sink.text('stdout').equals(captured)).toBe(true)
    expect(sink.mostQueued).toBeLessThanOrEqual(SlowLog.CAPACITY + 64 * 1024)
  })

  it('stops waiting for a full log when the job is cancelled', async () => {
    // A log reader that never takes more: on SIGINT the run's group must still end promptly, or the
    // cancel's warning would be printed inside its stop-commands window, where the runner ignores it.
    const fake = await startFake({
      statuses: ['EXECUTING'],
      events: [
        async (s) => {
          for (const e of [ev(0, 'init'), ev(1, 'spawn'), out(2, 'first\n'), out(3, 'second\n')]) await s.frame(e)
          s.hang()
        },
      ],
    })
    const controller = new AbortController()
    const stuck = new (class extends Sink {
      override write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
        super.write(stream, chunk)
        controller.abort(new Error('cancelled by SIGINT'))
      }
      ready(): Promise<void> {
        return new Promise(() => undefined)
      }
    })()
    await expect(watchOperation(fake.api, OP, stuck, { signal: controller.signal })).rejects.toThrow('cancelled by SIGINT')
    expect(stuck.text('stdout').toString()).toBe('first\n')
  })

  it('takes the outcome from the record after the polling fallback, with the older exit code field', async () => {
    const fake = await startFake({
      statuses: ['EXECUTING', 'FAILED'],
      record: { error: 'timeout', duration: 3, result_image_uuid: null, result: { image: null, exit_code: 137 }, metadata: { command: 'x', image: 'i', result: { stdout: { value: 'partial\n', encoding: 'ascii' } } } },
      events: [{ status: 405 }],
    })
    const sink = new Sink()
    const outcome = await watchOperation(fake.api, OP, sink, { sleep: () => new Promise((resolve) => setImmediate(resolve)) })
    expect(outcome).toEqual({ operationId: OP, status: 'FAILED', exitCode: 137, timedOut: false, error: 'timeout', resultImage: null, durationMs: 3000 })
    expect(sink.text('stdout').toString()).toBe('partial\n')
    expect(fake.log).toEqual(['events follow', 'get', 'get', 'get'])
  })

  it('reports a timed-out, signalled main process and tolerates the older completion names', async () => {
    const fake = await startFake({
      events: [
        async (s) => {
          for (const e of [out(0, 'working\n'), exit(1, -1, { signal: 9, timed_out: true }), ev(2, 'completion', { status: 'SUCCESS', duration: 1.25, result_image: 'img-old' })]) await s.frame(e)
          s.end()
        },
      ],
    })
    const outcome = await watchOperation(fake.api, OP, new Sink())
    expect(outcome).toEqual({ operationId: OP, status: 'SUCCESS', exitCode: null, timedOut: true, error: null, resultImage: 'img-old', durationMs: 1250 })
    expect(fake.log).toEqual(['events follow'])
  })

  it('shows import progress whatever spid it uses', async () => {
    const fake = await startFake({
      events: [
        async (s) => {
          for (const e of [out(0, 'pulling layer 1/2\n', 0), out(1, 'pulling layer 2/2\n', 0), done(2)]) await s.frame(e)
          s.end()
        },
      ],
    })
    const sink = new Sink()
    const outcome = await watchOperation(fake.api, OP, sink, { kind: 'image_import' })
    expect(sink.text('stdout').toString()).toBe('pulling layer 1/2\npulling layer 2/2\n')
    expect(outcome).toMatchObject({ status: 'SUCCESS', exitCode: null, resultImage: 'img-9' })
    expect(fake.log).toEqual(['events follow'])
  })
})
