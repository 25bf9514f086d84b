import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { Base64Bytes, LONG_VALUE_BYTES, parseEventJson } from '../../src/providers/contree/event-json.ts'
import { StreamDecoder } from '../../src/providers/contree/wire.ts'
import { sseText } from '../../src/sse/parser.ts'

function rng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

/** What the ordinary parse gives, with a Base64Bytes value turned back into its text. */
function asText(payload: unknown): unknown {
  return JSON.parse(JSON.stringify(payload, (_key, value: unknown) => (value instanceof Base64Bytes ? value.bytes.toString('latin1') : value)))
}

function outputFrame(value: string, options: { pythonStyle?: boolean; encoding?: string; extra?: Record<string, unknown> } = {}): Buffer {
  const event = { id: 7, ts: '2026-06-08T20:00:00.007Z', spid: 1, type: 'stdout', data: { value, encoding: options.encoding ?? 'base64' }, ...options.extra }
  // Python's json.dumps separates with ", " and ": ", JSON.stringify with neither.
  const text = options.pythonStyle ? JSON.stringify(event, null, 1).replace(/\n */g, ' ').replace(/\{ /g, '{').replace(/ \}/g, '}') : JSON.stringify(event)
  return Buffer.from(text)
}

describe('parseEventJson: a long base64 output value stays bytes', () => {
  const output = randomBytes(64 * 1024)

  it('leaves the value of an output event as a view of the frame, in compact and in Python-style JSON', () => {
    for (const pythonStyle of [false, true]) {
      const frame = outputFrame(output.toString('base64'), { pythonStyle })
      const payload = parseEventJson(frame) as { data: { value: unknown; encoding: string } }
      expect(payload.data.value, `pythonStyle: ${pythonStyle}`).toBeInstanceOf(Base64Bytes)
      expect(asText(payload)).toEqual(JSON.parse(frame.toString('utf8')))
      const decoded = new StreamDecoder().decode(payload.data as { value: Base64Bytes })
      expect(decoded.equals(output)).toBe(true)
    }
  })

  it('finds the value after strings with escaped quotes and backslashes', () => {
    const frame = Buffer.from(JSON.stringify({ note: 'say "hi', path: 'C:\\', type: 'stdout', data: { value: output.toString('base64'), encoding: 'base64' } }))
    const payload = parseEventJson(frame) as { data: { value: unknown } }
    expect(payload.data.value).toBeInstanceOf(Base64Bytes)
    expect(asText(payload)).toEqual(JSON.parse(frame.toString('utf8')))
  })

  it('parses the ordinary way what it cannot take apart safely, with the same result', () => {
    const base64 = output.toString('base64')
    const cases: [string, Buffer][] = [
      ['short value', outputFrame(randomBytes(100).toString('base64'))],
      ['escaped slashes', Buffer.from(JSON.stringify({ id: 1, type: 'stdout', data: { value: base64, encoding: 'base64' } }).replace(/\//g, '\\/'))],
      ['ascii encoding', outputFrame('x'.repeat(LONG_VALUE_BYTES * 2), { encoding: 'ascii' })],
      ['ascii encoding, text full of escaped quotes', outputFrame('say "hi" \\ '.repeat(LONG_VALUE_BYTES), { encoding: 'ascii' })],
      ['the encoding far from either end of the frame', Buffer.from(JSON.stringify({ note: 'n'.repeat(2000), data: { encoding: 'base64', value: base64 }, type: 'stdout' }))],
      ['the encoding written with escapes', Buffer.from(outputFrame(base64).toString('latin1').replace('"base64"', '"base\\u0036\\u0034"'))],
      ['non-ASCII text in the value', outputFrame('é'.repeat(LONG_VALUE_BYTES))],
      ['the marker elsewhere in the frame', outputFrame(base64, { extra: { note: 'a\u0000b' } })],
      ['a long string in another field first', Buffer.from(JSON.stringify({ command: 'y'.repeat(LONG_VALUE_BYTES * 2), id: 4, type: 'stdout', data: { value: base64, encoding: 'base64' } }))],
      ['a long command, no output', Buffer.from(JSON.stringify({ id: 2, type: 'spawn', data: { command: `echo "${'z'.repeat(3000)}"`, args: [] } }))],
      ['the marker as the value, a long string before it', Buffer.from(JSON.stringify({ x: base64, id: 5, type: 'stdout', data: { value: '\u0000', encoding: 'base64' } }))],
      ['a long value outside data', Buffer.from(JSON.stringify({ id: 3, type: 'stdout', value: base64, data: { value: 'aGkK', encoding: 'base64' } }))],
    ]
    for (const [name, frame] of cases) {
      const payload = parseEventJson(frame) as { data: { value: unknown } }
      expect(payload.data.value, name).not.toBeInstanceOf(Base64Bytes)
      expect(payload, name).toEqual(JSON.parse(sseText(frame)))
    }
  })

  it('agrees with JSON.parse on random frames: key order, spacing, escapes and non-ASCII text elsewhere', () => {
    const random = rng(2026)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
    const texts = ['plain', 'quote " inside', 'back\\slash', 'tab\tand\nline', 'é ☃ 😀', '\u0000', '\\u0000', '"', '\\']
    let fast = 0
    for (let round = 0; round < 400; round++) {
      const valueBytes = random() < 0.8 ? LONG_VALUE_BYTES + Math.floor(random() * 5000) : Math.floor(random() * LONG_VALUE_BYTES)
      const data: Record<string, unknown> = { value: randomBytes(Math.ceil((valueBytes * 3) / 4)).toString('base64'), encoding: pick(['base64', 'base64', 'base64', 'ascii']) }
      if (random() < 0.3) data.truncated = random() < 0.5
      const fields: [string, unknown][] = [
        ['id', round],
        ['type', pick(['stdout', 'stderr'])],
        ['ts', '2026-06-08T20:00:00Z'],
        ['data', data],
      ]
      if (random() < 0.5) fields.push([pick(['note', 'x-trace', 'spid']), random() < 0.5 ? pick(texts) : Math.floor(random() * 9)])
      fields.sort(() => random() - 0.5)
      const indent = pick([undefined, 0, 1, 2])
      let text = JSON.stringify(Object.fromEntries(fields), null, indent).replace(/\n/g, pick(['', ' ', '\t']))
      // Some servers escape every slash; JSON allows it.
      if (random() < 0.1) text = text.replace(/\//g, '\\/')
      const frame = Buffer.from(text)
      const payload = parseEventJson(frame) as { data: { value: unknown } }
      if (payload.data.value instanceof Base64Bytes) fast++
      expect(asText(payload), text.slice(0, 200)).toEqual(JSON.parse(sseText(frame)))
    }
    // Most of these frames must take the fast way, or the comparison above proves little.
    expect(fast).toBeGreaterThan(150)
  })

  it('throws on a frame that is not JSON, as JSON.parse does', () => {
    const frame = outputFrame(output.toString('base64'))
    for (const broken of [frame.subarray(0, frame.length - 1), Buffer.concat([frame, Buffer.from('x')]), Buffer.concat([Buffer.from('['), frame])]) {
      expect(() => JSON.parse(sseText(broken))).toThrow(SyntaxError)
      expect(() => parseEventJson(broken)).toThrow(SyntaxError)
    }
  })
})
