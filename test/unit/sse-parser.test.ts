import { createParser } from 'eventsource-parser'
import { describe, expect, it } from 'vitest'
import { parseSse, SseFrameTooLargeError, type SseEvent, type SseMessage } from '../../src/sse/parser.ts'

async function* chunksOf(parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield part
}

async function collect(parts: Uint8Array[], opts?: Parameters<typeof parseSse>[1]): Promise<SseMessage[]> {
  const out: SseMessage[] = []
  for await (const message of parseSse(chunksOf(parts), opts)) out.push(message)
  return out
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

/** Deterministic PRNG so a failing split can be reproduced. */
function rng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

const STREAM = [
  ': keepalive',
  '',
  'id: 0',
  'event: init',
  'data: {"id":0,"type":"init","data":{}}',
  '',
  'id: 1',
  'event: stdout',
  'data: {"id":1,"type":"stdout","data":{"value":"héllo wörld — ✓ 🚀","encoding":"ascii"}}',
  '',
  ': stream ended with error, retry since last event id',
  '',
  'event: sse_error',
  'data: upstream event source closed unexpectedly',
  '',
  'id: 2',
  '',
  'data: line one',
  'data: line two',
  '',
  'id: 3',
  'event: completion',
  'data: {"id":3,"type":"completion","data":{"status":"SUCCESS"}}',
  '',
  '',
].join('\n')

const EXPECTED: SseMessage[] = [
  { kind: 'comment', comment: 'keepalive' },
  { kind: 'event', id: '0', event: 'init', data: '{"id":0,"type":"init","data":{}}' },
  { kind: 'event', id: '1', event: 'stdout', data: '{"id":1,"type":"stdout","data":{"value":"héllo wörld — ✓ 🚀","encoding":"ascii"}}' },
  { kind: 'comment', comment: 'stream ended with error, retry since last event id' },
  { kind: 'event', event: 'sse_error', data: 'upstream event source closed unexpectedly' },
  { kind: 'id', id: '2' },
  { kind: 'event', event: 'message', data: 'line one\nline two' },
  { kind: 'event', id: '3', event: 'completion', data: '{"id":3,"type":"completion","data":{"status":"SUCCESS"}}' },
]

describe('parseSse', () => {
  const lf = Buffer.from(STREAM)
  const crlf = Buffer.from(STREAM.replace(/\n/g, '\r\n'))

  it('parses a whole stream', async () => {
    expect(await collect([lf])).toEqual(EXPECTED)
    expect(await collect([crlf])).toEqual(EXPECTED)
  })

  it('gives identical messages for every single split point (LF and CRLF)', async () => {
    for (const bytes of [lf, crlf]) {
      for (let point = 1; point < bytes.length; point++) {
        expect(await collect(splitAt(bytes, [point])), `split at ${point}`).toEqual(EXPECTED)
      }
    }
  })

  it('gives identical messages for random multi-way splits, including byte-by-byte', async () => {
    const random = rng(42)
    for (const bytes of [lf, crlf]) {
      expect(await collect(splitAt(bytes, [...bytes.keys()]))).toEqual(EXPECTED)
      for (let round = 0; round < 200; round++) {
        const points = Array.from({ length: 1 + Math.floor(random() * 12) }, () => Math.floor(random() * bytes.length))
        expect(await collect(splitAt(bytes, points)), `round ${round}: ${points.join(',')}`).toEqual(EXPECTED)
      }
    }
  })

  it('keeps multi-byte UTF-8 intact when a character straddles chunks', async () => {
    const rocket = lf.indexOf(Buffer.from('🚀'))
    for (let offset = 1; offset < 4; offset++) {
      expect(await collect(splitAt(lf, [rocket + offset]))).toEqual(EXPECTED)
    }
  })

  it('treats a CRLF split between \\r and \\n as one line break', async () => {
    let index = crlf.indexOf('\r\n')
    while (index !== -1) {
      expect(await collect(splitAt(crlf, [index + 1]))).toEqual(EXPECTED)
      index = crlf.indexOf('\r\n', index + 2)
    }
  })

  it('does not dispatch a frame cut before its blank line', async () => {
    const cut = Buffer.from('id: 5\nevent: stdout\ndata: {"partial":')
    expect(await collect([Buffer.from('id: 4\nevent: x\ndata: y\n\n'), cut])).toEqual([{ kind: 'event', id: '4', event: 'x', data: 'y' }])
  })

  it('rejects a line or frame over the limit', async () => {
    const big = Buffer.from(`data: ${'x'.repeat(200)}`)
    await expect(collect([big], { maxFrameChars: 100 })).rejects.toBeInstanceOf(SseFrameTooLargeError)
    const manyLines = Buffer.from(Array.from({ length: 20 }, () => `data: ${'y'.repeat(20)}\n`).join(''))
    await expect(collect([manyLines], { maxFrameChars: 100 })).rejects.toBeInstanceOf(SseFrameTooLargeError)
    // Many small frames are fine however long the stream.
    const manyFrames = Buffer.from(Array.from({ length: 50 }, (_, i) => `data: ${i}\n\n`).join(''))
    expect(await collect([manyFrames], { maxFrameChars: 100 })).toHaveLength(50)
  })
})

describe('parseSse tolerates what the SSE spec says to ignore', () => {
  const frame = (id: number, extra: string): string =>
    `id: ${id}\nevent: stdout\n${extra}data: {"id":${id},"type":"stdout","data":{"value":"x","encoding":"ascii"}}\n\n`
  const event = (id: number): SseMessage => ({
    kind: 'event',
    id: String(id),
    event: 'stdout',
    data: `{"id":${id},"type":"stdout","data":{"value":"x","encoding":"ascii"}}`,
  })

  it.each([
    ['an unknown field', 'x-trace: 00-4bf92f3577b34da6-01\n'],
    ['a retry that is not a number', 'retry: abc\n'],
    ['an empty retry', 'retry:\n'],
    ['a field without a colon', 'x-flag\n'],
    ['a valid retry', 'retry: 1500\n'],
  ])('ignores %s and still delivers every event', async (_name, extra) => {
    const stream = Buffer.from(`${frame(0, extra)}${frame(1, '')}${extra}\n${frame(2, extra)}`)
    expect(await collect([stream])).toEqual([event(0), event(1), event(2)])
    // Also when the odd line arrives a byte at a time.
    expect(await collect(splitAt(stream, [...stream.keys()]))).toEqual([event(0), event(1), event(2)])
  })

  it('skips a leading byte order mark, also when it is split across chunks', async () => {
    const stream = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(frame(0, ''))])
    expect(await collect([stream])).toEqual([event(0)])
    expect(await collect(splitAt(stream, [1, 2]))).toEqual([event(0)])
  })

  it('accepts CRLF line ends around unknown fields', async () => {
    const stream = Buffer.from(`${frame(0, 'x-trace: a\n')}${frame(1, 'retry: abc\n')}`.replace(/\n/g, '\r\n'))
    expect(await collect([stream])).toEqual([event(0), event(1)])
    expect(await collect(splitAt(stream, [...stream.keys()]))).toEqual([event(0), event(1)])
  })
})

/**
 * The parser this one replaced, on eventsource-parser and a streaming TextDecoder: the reference a
 * byte-level parser must agree with on any input, cut anywhere.
 */
async function referenceParse(parts: Uint8Array[]): Promise<SseMessage[]> {
  const out: SseMessage[] = []
  let pendingId: string | undefined
  const flushPendingId = (): void => {
    if (pendingId !== undefined) out.push({ kind: 'id', id: pendingId })
    pendingId = undefined
  }
  const parser = createParser({
    onId(id) {
      flushPendingId()
      pendingId = id
    },
    onEvent(message) {
      if (message.id !== undefined && pendingId === message.id) pendingId = undefined
      flushPendingId()
      const event: SseEvent = { kind: 'event', event: message.event ?? 'message', data: message.data }
      if (message.id !== undefined) event.id = message.id
      out.push(event)
    },
    onComment(comment) {
      flushPendingId()
      out.push({ kind: 'comment', comment: comment.trim() })
    },
  })
  const decoder = new TextDecoder('utf-8')
  for (const part of parts) parser.feed(decoder.decode(part, { stream: true }))
  parser.feed(decoder.decode())
  flushPendingId()
  return out
}

describe('parseSse agrees with the eventsource-parser reference', () => {
  const LINES = [
    'data: x', 'data:y', 'data', 'data:  two spaces', 'data: 日本 ✓', 'data: a\u0000b', 'id: 5', 'id:7', 'id', 'id: a\u0000',
    'event: stdout', 'event:', 'event:x', ': keepalive', ':', ':  spaced', 'retry: 5', 'retry: x', 'retry:', 'x-trace: a',
    'foo', 'dat', 'datas: z', '',  '', '',
  ]
  const ENDS = ['\n', '\n', '\r\n', '\r']

  it('for random streams of known, odd and unknown lines, cut anywhere', async () => {
    const random = rng(99)
    for (let round = 0; round < 1500; round++) {
      const parts: string[] = random() < 0.2 ? ['\uFEFF'] : []
      for (let l = 10 + Math.floor(random() * 20); l > 0; l--) {
        parts.push(LINES[Math.floor(random() * LINES.length)] as string, ENDS[Math.floor(random() * ENDS.length)] as string)
      }
      const bytes = Buffer.from(parts.join(''))
      const points = Array.from({ length: Math.floor(random() * 8) }, () => Math.floor(random() * bytes.length))
      const chunks = splitAt(bytes, points)
      expect(await collect(chunks), `round ${round}: ${JSON.stringify(parts.join(''))} at ${points.join(',')}`).toEqual(await referenceParse(chunks))
    }
  })
})
