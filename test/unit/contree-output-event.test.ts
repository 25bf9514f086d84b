/**
 * The fast reader of output events (output-event.ts) and the whole streaming path behind it:
 * SSE bytes → follower → watcher → log writer, for frames split at every byte, characters split
 * across chunks and frames, frames that do not fit the fast shape, and injection payloads.
 */
import { describe, expect, it } from 'vitest'
import type { HttpResponse } from '../../src/http/client.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import type { FollowApi } from '../../src/providers/contree/follow.ts'
import { readOutputEvent } from '../../src/providers/contree/output-event.ts'
import { watchOperation } from '../../src/providers/contree/watch.ts'
import { decodeStream, type OperationResponse, type StreamRepr } from '../../src/providers/contree/wire.ts'
import { simulateRunner, withoutStopCommands } from './output-runner-simulator.ts'

/** What the general path (JSON.parse, then the follower's field rules) makes of an output event. */
function viaJson(text: string): { id: number; type: string; ts?: string; spid?: number; bytes: Buffer; encoding: string; truncated?: boolean } {
  const record = JSON.parse(text) as Record<string, unknown>
  const data = record.data as { value: string; encoding: string; truncated?: boolean }
  const out: ReturnType<typeof viaJson> = {
    id: record.id as number,
    type: record.type as string,
    bytes: Buffer.from(decodeStream(data)),
    encoding: data.encoding,
  }
  if (typeof record.ts === 'string') out.ts = record.ts
  if (typeof record.spid === 'number') out.spid = record.spid
  if (data.truncated !== undefined) out.truncated = data.truncated
  return out
}

function viaFastPath(text: string): ReturnType<typeof viaJson> | undefined {
  const event = readOutputEvent(Buffer.from(text))
  if (event === undefined) return undefined
  const data = event.data as unknown as StreamRepr
  const out: ReturnType<typeof viaJson> = { id: event.id, type: event.type, bytes: Buffer.from(decodeStream(data)), encoding: data.encoding }
  if (event.ts !== undefined) out.ts = event.ts
  if (event.spid !== undefined) out.spid = event.spid
  if (data.truncated !== undefined) out.truncated = data.truncated
  // The text as the wire had it is still there for whoever asks.
  expect(data.value).toBe((JSON.parse(text) as { data: { value: string } }).data.value)
  return out
}

const ACCEPTED: [string, string][] = [
  ['ascii as JSON.stringify writes it', JSON.stringify({ id: 7, ts: '2026-06-08T20:00:00.1Z', spid: 1, type: 'stdout', data: { value: 'a "quoted" \\ back\tslash\r\n', encoding: 'ascii' } })],
  ['base64 of binary bytes', JSON.stringify({ id: 8, type: 'stderr', spid: 2, data: { value: Buffer.from([0, 255, 10, 13, 0xe2]).toString('base64'), encoding: 'base64', truncated: false } })],
  ['escaped solidus and \\u escapes below 0x80', '{"id":9,"type":"stdout","data":{"value":"a\\/b\\u0041\\u001b[0m\\b\\f","encoding":"ascii"}}'],
  ['members in another order, whitespace between tokens', ' { "data" : { "encoding" : "ascii" , "value" : "x" , "truncated" : true } , "type" : "stdout" , "id" : 10 } '],
  ['unknown members with plain values', '{"id":11,"extra":"s","n":-3,"flag":false,"nothing":null,"type":"stdout","data":{"value":"y","encoding":"ascii"}}'],
  ['a duplicate member: the last one counts', '{"id":1,"id":12,"type":"stderr","type":"stdout","data":{"value":"z","encoding":"ascii"}}'],
  ['base64 with an escaped solidus', '{"id":13,"type":"stdout","data":{"value":"YS9i\\/w==","encoding":"base64"}}'],
  ['an empty value', '{"id":14,"type":"stdout","data":{"value":"","encoding":"ascii"}}'],
  ['another encoding name is text', '{"id":15,"type":"stdout","data":{"value":"plain","encoding":"utf8"}}'],
]

const GENERAL_PATH: [string, string][] = [
  ['another event type', '{"id":1,"type":"exit","data":{"code":0}}'],
  ['no id', '{"type":"stdout","data":{"value":"x","encoding":"ascii"}}'],
  ['a fractional id', '{"id":1.5,"type":"stdout","data":{"value":"x","encoding":"ascii"}}'],
  ['an exponent', '{"id":1e2,"type":"stdout","data":{"value":"x","encoding":"ascii"}}'],
  ['a leading zero (invalid JSON)', '{"id":01,"type":"stdout","data":{"value":"x","encoding":"ascii"}}'],
  ['non-ASCII text in the value', '{"id":1,"type":"stdout","data":{"value":"héllo","encoding":"ascii"}}'],
  ['a \\u escape beyond ASCII', '{"id":1,"type":"stdout","data":{"value":"\\u00e9","encoding":"ascii"}}'],
  ['a surrogate escape', '{"id":1,"type":"stdout","data":{"value":"\\ud83d\\ude00","encoding":"ascii"}}'],
  ['an unknown member in data', '{"id":1,"type":"stdout","data":{"value":"x","encoding":"ascii","more":1}}'],
  ['a nested unknown member', '{"id":1,"meta":{"a":1},"type":"stdout","data":{"value":"x","encoding":"ascii"}}'],
  ['an array member', '{"id":1,"list":[1],"type":"stdout","data":{"value":"x","encoding":"ascii"}}'],
  ['no encoding', '{"id":1,"type":"stdout","data":{"value":"x"}}'],
  ['a value that is not a string', '{"id":1,"type":"stdout","data":{"value":5,"encoding":"ascii"}}'],
  ['a type that is not a string', '{"id":1,"type":1,"data":{"value":"x","encoding":"ascii"}}'],
  ['trailing garbage (invalid JSON)', '{"id":1,"type":"stdout","data":{"value":"x","encoding":"ascii"}} x'],
  ['a trailing comma (invalid JSON)', '{"id":1,"type":"stdout","data":{"value":"x","encoding":"ascii"},}'],
  ['an invalid escape (invalid JSON)', '{"id":1,"type":"stdout","x":"\\q","data":{"value":"x","encoding":"ascii"}}'],
  ['a raw control character (invalid JSON)', '{"id":1,"type":"stdout","data":{"value":"a\tb","encoding":"ascii"}}'],
  ['unterminated', '{"id":1,"type":"stdout","data":{"value":"x'],
  ['not an object', '[1,2]'],
  ['an escaped key', '{"i\\u0064":1,"type":"stdout","data":{"value":"x","encoding":"ascii"}}'],
]

describe('readOutputEvent', () => {
  it.each(ACCEPTED)('reads %s exactly as JSON.parse would', (_name, text) => {
    expect(viaFastPath(text)).toEqual(viaJson(text))
  })

  it.each(GENERAL_PATH)('leaves %s to the general path', (_name, text) => {
    expect(readOutputEvent(Buffer.from(text))).toBeUndefined()
  })

  it('never reads a mutated event differently from JSON.parse', () => {
    let state = 17
    const random = (): number => {
      state = (state * 1664525 + 1013904223) >>> 0
      return state / 2 ** 32
    }
    const base = ACCEPTED.map(([, text]) => Buffer.from(text))
    const noise = Buffer.from('{}[]",:\\ 0123456789.-eEtrufalsn/bu\u00e9\t')
    for (let round = 0; round < 20_000; round++) {
      const bytes = Buffer.from(base[Math.floor(random() * base.length)] as Buffer)
      for (let k = 1 + Math.floor(random() * 3); k > 0; k--) bytes[Math.floor(random() * bytes.length)] = noise[Math.floor(random() * noise.length)] as number
      const text = bytes.toString('latin1')
      const fast = readOutputEvent(Buffer.from(text, 'latin1'))
      if (fast === undefined) continue
      // Whatever the fast path accepts, JSON.parse reads as the same output event.
      const event = viaJson(Buffer.from(text, 'latin1').toString('utf8'))
      expect(event.type === 'stdout' || event.type === 'stderr', text).toBe(true)
      expect(viaFastPath(text), text).toEqual(event)
    }
  })
})

/** A follower API whose event stream is `chunks`, and whose operation record says SUCCESS. */
function fakeApi(chunks: readonly Uint8Array[]): FollowApi {
  const response = (body: AsyncIterable<Uint8Array>): HttpResponse => ({
    status: 200,
    headers: {},
    body,
    json: async () => ({}) as never,
    text: async () => '',
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
  // "€😀" split across three events, plus an ascii event with escapes and one frame the fast path
  // leaves to JSON.parse (an extra nested member), and CRLF frames in the middle.
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

  it('keeps injection payloads inert on the fast path, ascii and base64 alike', async () => {
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
    // Every frame takes the fast path.
    for (const text of frames.filter((f) => f.includes('"stdout"') || f.includes('"stderr"'))) {
      expect(readOutputEvent(Buffer.from(/data: (.*)\n/.exec(text)?.[1] ?? ''))).toBeDefined()
    }
    const bytes = Buffer.from(frames.join(''))
    for (const chunks of [[bytes], splitAt(bytes, [...bytes.keys()].filter((k) => k % 7 === 0))]) {
      const result = await printedThrough(chunks)
      expect(result.commands).toEqual(['group', 'stop-commands', 'tok0001a1b2c3d4e5f6', 'endgroup'])
      expect(result.bare).toEqual(['group', 'endgroup'])
      expect(result.lines.join('\n').toLowerCase()).not.toContain('tok0001a1b2c3d4e5f6')
    }
  })
})
