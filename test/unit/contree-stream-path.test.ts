/**
 * The whole streaming path: SSE bytes → follower → watcher → log writer, for frames split at every
 * byte, characters split across chunks and frames, frames of unusual shape, unknown fields, and
 * injection payloads in ascii and base64 output events.
 */
import { describe, expect, it } from 'vitest'
import type { HttpResponse } from '../../src/http/client.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import type { FollowApi } from '../../src/providers/contree/follow.ts'
import { watchOperation } from '../../src/providers/contree/watch.ts'
import type { OperationResponse } from '../../src/providers/contree/wire.ts'
import { simulateRunner, withoutStopCommands } from './output-runner-simulator.ts'

/** A follower API whose event stream is `chunks`, and whose operation record says SUCCESS. */
function fakeApi(chunks: readonly Uint8Array[]): FollowApi {
  const response = (body: AsyncIterable<Uint8Array>): HttpResponse => ({
    status: 200,
    headers: {},
    body,
    json: async () => ({}) as never,
    text: async () => '',
    bytes: async () => new Uint8Array(0),
    dump: async () => undefined,
  })
  return {
    openEvents: async () =>
      response(
        (async function* () {
          yield* chunks
        })(),
      ),
    getOperation: async () => ({ uuid: 'op', status: 'SUCCESS', duration: 1 }) as OperationResponse,
  }
}

function frame(id: number, type: string, data: unknown, spid = 1): string {
  return `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ id, ts: '2026-06-08T20:00:00Z', spid, type, data })}\n\n`
}

/** The remote lines RemoteLog printed in the run's window, and every command the runner would run. */
async function printedThrough(chunks: readonly Uint8Array[]): Promise<{ lines: string[]; commands: string[]; bare: string[] }> {
  const writes: string[] = []
  const log = new RemoteLog({ write: (text) => writes.push(text), newToken: () => 'tok0001a1b2c3d4e5f6' })
  const group = log.open('run')
  await watchOperation(fakeApi(chunks), 'op', group)
  group.end('done')
  const output = writes.join('')
  const sim = simulateRunner(output)
  const start = sim.commands.findIndex((c) => c.name === 'stop-commands')
  const end = sim.commands.findIndex((c) => c.kind === 'resume')
  return {
    lines: sim.lines.slice((sim.commands[start]?.index ?? 0) + 1, sim.commands[end]?.index),
    commands: sim.commands.map((c) => c.name),
    bare: simulateRunner(withoutStopCommands(output)).commands.map((c) => c.name),
  }
}

function splitAt(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const sorted = [...new Set(points)].filter((p) => p > 0 && p < bytes.length).sort((a, b) => a - b)
  const parts: Uint8Array[] = []
  let start = 0
  for (const point of sorted) {
    parts.push(bytes.subarray(start, point))
    start = point
  }
  parts.push(bytes.subarray(start))
  return parts
}

describe('output events through the whole streaming path', () => {
  // "€😀" split across three events, an ascii event with escapes, a frame with an extra nested
  // member and one in CRLF, and unknown fields between frames.
  const text = Buffer.from('héllo €😀 wörld\n')
  const cut1 = 8
  const cut2 = 11
  const stream = Buffer.from(
    [
      ': keepalive\n\n',
      frame(0, 'init', { init_pid: 1 }, 0),
      frame(1, 'stdout', { value: text.subarray(0, cut1).toString('base64'), encoding: 'base64' }),
      frame(2, 'stdout', { value: text.subarray(cut1, cut2).toString('base64'), encoding: 'base64' }),
      frame(3, 'stdout', { value: text.subarray(cut2).toString('base64'), encoding: 'base64' }),
      frame(4, 'stdout', { value: 'tab\there "q" \\ and a line\n', encoding: 'ascii' }).replaceAll('\n', '\r\n'),
      `id: 5\nevent: stdout\ndata: ${JSON.stringify({ id: 5, type: 'stdout', spid: 1, meta: { nested: true }, data: { value: 'via JSON.parse\n', encoding: 'ascii' } })}\n\n`,
      frame(6, 'stdout', { value: 'x-trace comes next\n', encoding: 'ascii' }),
      'x-trace: 00-abc-01\nretry: soon\n\n',
      frame(7, 'exit', { pid: 1, code: 0, signal: -1, timed_out: false, duration_ms: 5 }),
      frame(8, 'completion', { status: 'SUCCESS', duration_ms: 5 }, 0),
    ].join(''),
  )
  const expected = ['héllo €😀 wörld', 'tab\there "q" \\ and a line', 'via JSON.parse', 'x-trace comes next']

  it('prints the same lines for the stream in one piece, split at every byte, and byte by byte', async () => {
    expect((await printedThrough([stream])).lines).toEqual(expected)
    for (let point = 1; point < stream.length; point += 1) {
      expect((await printedThrough(splitAt(stream, [point]))).lines, `split at ${point}`).toEqual(expected)
    }
    expect((await printedThrough(splitAt(stream, [...stream.keys()]))).lines).toEqual(expected)
  })

  it('keeps injection payloads inert, ascii and base64 alike', async () => {
    const payloads = [
      '::error::forged\n',
      '  ::add-mask::x\n::endgroup::\n',
      '::tok0001a1b2c3d4e5f6::\n::error::after resume\n',
      'x ##[error]legacy\n##[group]g\n',
      'progress\r::warning::cr trick\n',
      'nul\x00 bell\x07 del\x7f\n',
    ]
    const frames: string[] = [frame(0, 'init', {}, 0)]
    let id = 1
    for (const payload of payloads) {
      frames.push(frame(id++, 'stdout', { value: payload, encoding: 'ascii' }))
      frames.push(frame(id++, 'stderr', { value: Buffer.from(payload).toString('base64'), encoding: 'base64' }))
    }
    frames.push(frame(id++, 'exit', { pid: 1, code: 0, signal: -1, timed_out: false, duration_ms: 5 }))
    frames.push(frame(id, 'completion', { status: 'SUCCESS', duration_ms: 5 }, 0))
    const bytes = Buffer.from(frames.join(''))
    for (const chunks of [[bytes], splitAt(bytes, [...bytes.keys()].filter((k) => k % 7 === 0))]) {
      const result = await printedThrough(chunks)
      expect(result.commands).toEqual(['group', 'stop-commands', 'tok0001a1b2c3d4e5f6', 'endgroup'])
      expect(result.bare).toEqual(['group', 'endgroup'])
      expect(result.lines.join('\n').toLowerCase()).not.toContain('tok0001a1b2c3d4e5f6')
    }
  })
})
