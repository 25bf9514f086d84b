/**
 * The build-log follower against a scripted builder: control frames, 404 while the build is not there
 * yet, drops and clean ends that reconnect, a builder that replays its log from the first line on
 * every connection (as the SDKs' reconnects imply) and one that does not, fatal statuses, the deadline.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { RetryPolicy } from '../../src/http/retry.ts'
import { BuildLogError, followBuildLog, type BuildLogOptions } from '../../src/providers/together/build-log.ts'
import { TogetherBuilder } from '../../src/providers/together/builder.ts'
import { DeadlineExceededError } from '../../src/providers/together/wait-budget.ts'
import type { OutputSink } from '../../src/providers/types.ts'
import { json, sse, startScriptedServer, type ScriptedServer, type SseStream } from '../helpers/scripted-server.ts'

const BUILD = 'build-1'
const servers: ScriptedServer[] = []
afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.close()
})

type Connection = ((stream: SseStream) => Promise<void>) | { status: number }

/** A builder whose n-th log connection follows the n-th script entry (the last one repeats). */
async function builderWith(connections: Connection[]): Promise<{ builder: TogetherBuilder; server: ScriptedServer }> {
  let n = 0
  const server = await startScriptedServer(async (req, res) => {
    if (req.path !== `/builds/${BUILD}/logs`) return json(res, 404, { error: 'no route' })
    const script = connections[Math.min(n++, connections.length - 1)] as Connection
    if ('status' in script) return json(res, script.status, { error: `status ${script.status}` })
    await script(sse(res))
  })
  servers.push(server)
  const sleep = async () => undefined
  return { builder: new TogetherBuilder({ baseUrl: server.url, token: 't', userAgent: 'test', retry: new RetryPolicy({ sleep }), sleep }), server }
}

function collector(): OutputSink & { text(): string } {
  const chunks: Buffer[] = []
  return { write: (_stream, chunk) => chunks.push(Buffer.from(chunk)), text: () => Buffer.concat(chunks).toString('utf8') }
}

/** A fake clock that sleeps advance; the deadline is measured on it. */
function fakeTime(): Pick<BuildLogOptions, 'now' | 'sleep'> & { slept: number[] } {
  let now = 0
  const slept: number[] = []
  return {
    slept,
    now: () => now,
    sleep: async (ms) => {
      slept.push(ms)
      now += ms
    },
  }
}

const lines = (...items: string[]) => async (s: SseStream) => {
  for (const item of items) await s.event(item)
}

describe('build log follower', () => {
  it('prints plain lines once and ends on {"done":true}', async () => {
    const { builder } = await builderWith([
      async (s) => {
        await lines('#1 [internal] load build definition', '\u001b[36m#1 DONE 0.0s\u001b[0m', '{"looks":"like json"}')(s)
        await s.comment()
        await s.event('{"done":true}')
        await s.event('after done is never read')
        s.end()
      },
    ])
    const sink = collector()
    expect(await followBuildLog(builder, BUILD, sink, fakeTime())).toEqual({ kind: 'done' })
    expect(sink.text()).toBe('#1 [internal] load build definition\n\u001b[36m#1 DONE 0.0s\u001b[0m\n{"looks":"like json"}\n')
  })

  it('ends on {"error":…} with its message', async () => {
    const { builder } = await builderWith([lines('#3 RUN false', '{"error":"process \\"/bin/sh -c false\\" did not complete successfully: exit code: 1"}')])
    expect(await followBuildLog(builder, BUILD, collector(), fakeTime())).toEqual({
      kind: 'error',
      message: 'process "/bin/sh -c false" did not complete successfully: exit code: 1',
    })
  })

  it('treats 404 as "not there yet" and keeps asking, within its budget', async () => {
    const { builder, server } = await builderWith([{ status: 404 }, { status: 404 }, { status: 404 }, lines('#1 start', '{"done":true}')])
    const sink = collector()
    expect(await followBuildLog(builder, BUILD, sink, fakeTime())).toEqual({ kind: 'done' })
    expect(sink.text()).toBe('#1 start\n')
    expect(server.count('GET', /\/logs$/)).toBe(4)
  })

  it('gives up on a build that never appears', async () => {
    const { builder } = await builderWith([{ status: 404 }])
    await expect(followBuildLog(builder, BUILD, collector(), { ...fakeTime(), notThereYetMs: 30_000 })).rejects.toThrow(BuildLogError)
  })

  it('fails at once on a status reconnecting cannot fix', async () => {
    const { builder, server } = await builderWith([{ status: 401 }])
    await expect(followBuildLog(builder, BUILD, collector(), fakeTime())).rejects.toThrow(/cannot be read: .*HTTP 401/)
    expect(server.count('GET', /\/logs$/)).toBe(1)
  })

  it('skips what a replaying builder sends again after a drop and a clean end, printing every line once', async () => {
    const log = ['#1 a', '#2 b', '#3 c', '#4 d', '#5 e']
    const { builder, server } = await builderWith([
      async (s) => {
        await lines(...log.slice(0, 2))(s)
        await s.cutMidEvent(log[2] as string)
      },
      async (s) => {
        await lines(...log.slice(0, 4))(s)
        s.end()
      },
      async (s) => {
        await lines(...log, '{"done":true}')(s)
        s.end()
      },
    ])
    const sink = collector()
    expect(await followBuildLog(builder, BUILD, sink, fakeTime())).toEqual({ kind: 'done' })
    expect(sink.text()).toBe(`${log.join('\n')}\n`)
    expect(server.count('GET', /\/logs$/)).toBe(3)
  })

  it('loses nothing from a builder that resumes where it was instead of replaying', async () => {
    const { builder } = await builderWith([
      async (s) => {
        await lines('#1 a', '#2 b')(s)
        s.end()
      },
      async (s) => {
        await lines('#3 c', '{"done":true}')(s)
        s.end()
      },
    ])
    const sink = collector()
    await followBuildLog(builder, BUILD, sink, fakeTime())
    expect(sink.text()).toBe('#1 a\n#2 b\n#3 c\n')
  })

  it('keeps reconnecting through transient statuses, and waits between connections that bring nothing new', async () => {
    const time = fakeTime()
    const { builder, server } = await builderWith([{ status: 503 }, async (s) => s.end(), async (s) => s.end(), lines('{"done":true}')])
    expect(await followBuildLog(builder, BUILD, collector(), time)).toEqual({ kind: 'done' })
    expect(server.count('GET', /\/logs$/)).toBe(4)
    expect(time.slept.every((ms) => ms >= 1000)).toBe(true)
  })

  it('stops at the deadline', async () => {
    const time = fakeTime()
    const { builder } = await builderWith([async (s) => s.end()])
    await expect(followBuildLog(builder, BUILD, collector(), { ...time, deadline: 5_000 })).rejects.toThrow(DeadlineExceededError)
  })

  it('stops at once when the job is cancelled', async () => {
    const controller = new AbortController()
    const { builder } = await builderWith([
      async (s) => {
        await s.event('#1 a')
        controller.abort(new Error('cancelled by SIGINT'))
      },
    ])
    await expect(followBuildLog(builder, BUILD, collector(), { ...fakeTime(), signal: controller.signal })).rejects.toThrow('cancelled by SIGINT')
  })
})
