/**
 * The byte-level line writer (remote-lines.ts, behind RemoteLog) against the string rules of
 * line-sanitizer.ts: for any input and any way it is cut into chunks, a line that fits one piece is
 * printed exactly as the string sanitiser and guard would print it, and a longer one is cut into
 * pieces that hold the same text. The runner simulator checks that nothing escapes the window.
 */
import { isUtf8 } from 'node:buffer'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createLineSanitizer, guardLeadingCommand } from '../../src/output/line-sanitizer.ts'
import { closeLogsForExit, CONTINUATION_MARKER, RemoteLog, type RemoteLogOptions } from '../../src/output/remote-log.ts'
import { simulateRunner, withoutStopCommands } from './output-runner-simulator.ts'

const TOKEN = 'tok0001a1b2c3d4e5f6'

function rng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
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

/** Prints `chunks` as one stream of one group and returns the lines of its window. */
function printed(chunks: readonly Uint8Array[], options: RemoteLogOptions = {}, stream: 'stdout' | 'stderr' = 'stdout'): { lines: string[]; output: string } {
  const writes: string[] = []
  const log = new RemoteLog({ write: (text) => writes.push(text), newToken: () => TOKEN, ...options })
  const group = log.open('test')
  for (const chunk of chunks) group.write(stream, chunk)
  group.end('done')
  const output = writes.join('')
  const sim = simulateRunner(output)
  const start = sim.commands.find((c) => c.name === 'stop-commands')
  const end = sim.commands.find((c) => c.kind === 'resume')
  if (start === undefined || end === undefined) throw new Error(`no window in ${JSON.stringify(output)}`)
  return { lines: sim.lines.slice(start.index + 1, end.index), output }
}

/** What the string rules print for a whole stream whose lines all fit one piece. */
function stringRules(bytes: Uint8Array): string[] {
  const text = new TextDecoder().decode(bytes)
  const lines = text.split(/\r\n|\r|\n/)
  if (lines.at(-1) === '') lines.pop()
  const sanitize = createLineSanitizer(TOKEN)
  return lines.map((line) => guardLeadingCommand(sanitize(line)))
}

// Everything the sanitiser and the guard care about, and ordinary text around it.
const ALPHABET = [
  'a', 'b', 'Z', '0', ' ', ' ', '\t', '\x1b', '\x00', '\x07', '\x0b', '\x0c', '\x7f', '#', '#', '[', ']', ':', ':', '%',
  'é', '€', '😀', '日', '\u00a0', '\u0085', '\u2003', '\u3000', '\u2028', '\ufeff', '\u1680',
  '##[', '::', TOKEN, TOKEN.toUpperCase(), 'TOK0001A1b2C3d4e5f6', TOKEN.slice(0, 9),
]
const ILL_FORMED = [[0xff], [0x80], [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3]].map((bytes) => Buffer.from(bytes))
const WITHOUT_TOKEN = ALPHABET.filter((unit) => !unit.toLowerCase().startsWith('tok'))
const LINE_ENDS = ['\n', '\n', '\r\n', '\r']

function randomStream(random: () => number, lines: number, maxUnits: number, alphabet = ALPHABET): Buffer {
  const parts: (string | Buffer)[] = ['x\n'] // never a byte order mark first: that one is dropped
  for (let l = 0; l < lines; l++) {
    const units = Math.floor(random() * maxUnits)
    for (let u = 0; u < units; u++) parts.push(alphabet[Math.floor(random() * alphabet.length)] as string)
    // Now and then bytes that are not UTF-8: the writer replaces them as a decoder would.
    if (random() < 0.2) parts.push(ILL_FORMED[Math.floor(random() * ILL_FORMED.length)] as Buffer)
    parts.push(LINE_ENDS[Math.floor(random() * LINE_ENDS.length)] as string)
  }
  return Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part)))
}

function randomSplit(random: () => number, bytes: Uint8Array): Uint8Array[] {
  return splitAt(bytes, Array.from({ length: Math.floor(random() * 10) }, () => Math.floor(random() * bytes.length)))
}

describe('byte-level line writer', () => {
  it('prints every line that fits a piece exactly as the string sanitiser and guard do, however it is chunked', () => {
    const random = rng(3)
    for (let round = 0; round < 400; round++) {
      const bytes = randomStream(random, 1 + Math.floor(random() * 8), 12)
      const expected = stringRules(bytes)
      expect(printed([bytes]).lines, `round ${round} whole`).toEqual(expected)
      expect(printed(randomSplit(random, bytes)).lines, `round ${round} split`).toEqual(expected)
    }
  })

  it('gives the same lines for every single split point and byte by byte', () => {
    const bytes = Buffer.from(`a€b😀 ##[x\r\n  ::${TOKEN.toUpperCase()}::\rq\x07\x7fé\n\u3000::e\n`)
    const expected = stringRules(bytes)
    for (let point = 1; point < bytes.length; point++) expect(printed(splitAt(bytes, [point])).lines, `split at ${point}`).toEqual(expected)
    expect(printed(splitAt(bytes, [...bytes.keys()])).lines).toEqual(expected)
  })

  it('in bytes that are not UTF-8, reads every lead byte with every second byte as a decoder does', () => {
    // Each line starts with a byte that is never UTF-8, so the line writer takes its path for bytes
    // that may not be text; then a lead byte, any second byte, and continuation bytes that complete
    // the character when the second byte is in its lead's range (edges included) and not otherwise.
    const parts: number[] = [0x78, 0x0a]
    for (let lead = 0xc0; lead <= 0xff; lead++) {
      for (let second = 0; second <= 0xff; second++) parts.push(0xff, lead, second, 0x80, 0x80, 0x61, 0x0a)
    }
    const bytes = Buffer.from(parts)
    expect(printed([bytes]).lines).toEqual(stringRules(bytes))
  })

  it('cuts long lines into marked pieces within maxLineBytes that hold the whole line, however it is chunked', () => {
    const random = rng(5)
    const maxLineBytes = 40
    for (let round = 0; round < 300; round++) {
      // No token here: one that straddles a piece printed before the rest arrived is (harmlessly)
      // split rather than redacted, so the text would differ; the next test covers tokens.
      const bytes = randomStream(random, 1 + Math.floor(random() * 4), 120, WITHOUT_TOKEN)
      const chunks = randomSplit(random, bytes)
      const { lines, output } = printed(chunks, { maxLineBytes })
      for (const line of lines) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(maxLineBytes)
      // Pieces rebuild the lines: join marked pieces, then take out the guards' zero-width spaces.
      const joined: string[] = []
      let current = ''
      for (const line of lines) {
        if (line.endsWith(CONTINUATION_MARKER)) current += line.slice(0, -CONTINUATION_MARKER.length)
        else {
          joined.push(current + line)
          current = ''
        }
      }
      const unguarded = (line: string): string => line.replaceAll('\u200B', '')
      expect(joined.map(unguarded), `round ${round}`).toEqual(stringRules(bytes).map(unguarded))
      // Nothing in the window is a command even without the window.
      expect(simulateRunner(withoutStopCommands(output)).commands.map((c) => c.name)).toEqual(['group', 'endgroup'])
    }
  })

  it('fills every piece: a line is cut only where its next unit would not fit, in text and in bytes that are not UTF-8', () => {
    const random = rng(13)
    const maxLineBytes = 40
    // What a piece may hold before the marker and the guard (remote-log.ts: maxLineBytes − 4 − 3).
    const budget = maxLineBytes - Buffer.byteLength(CONTINUATION_MARKER) - 3
    const unitBytes = (piece: string): number => {
      if (piece.startsWith('#\u200B#[')) return Buffer.byteLength('#\u200B#[')
      return Buffer.byteLength(String.fromCodePoint(piece.codePointAt(0) as number))
    }
    for (let round = 0; round < 300; round++) {
      // Half the rounds are random bytes (mostly not UTF-8), half the alphabet with ill-formed bytes.
      const bytes =
        round % 2 === 0
          ? Buffer.concat([Buffer.from('x\n'), Buffer.from(Array.from({ length: 400 }, () => Math.floor(random() * 256)).filter((b) => b !== 0xe2))])
          : randomStream(random, 1 + Math.floor(random() * 4), 120, WITHOUT_TOKEN)
      const { lines } = printed([bytes], { maxLineBytes })
      for (let k = 0; k + 1 < lines.length; k++) {
        const piece = lines[k] as string
        if (!piece.endsWith(CONTINUATION_MARKER)) continue
        // Its content, without the marker and the guard between two leading colons.
        const content = piece.slice(0, -CONTINUATION_MARKER.length).replace(/^(\s*):\u200B:/u, '$1::')
        const next = (lines[k + 1] as string).replace(/^(\s*):\u200B:/u, '$1::')
        expect(Buffer.byteLength(content) + unitBytes(next), `round ${round}, piece ${k}: ${JSON.stringify(content)} then ${JSON.stringify(next)}`).toBeGreaterThan(budget)
      }
    }
  })

  it('never prints the whole token in one line, in random long lines chunked anyhow', () => {
    const random = rng(9)
    for (let round = 0; round < 300; round++) {
      const bytes = randomStream(random, 1 + Math.floor(random() * 4), 120)
      const { lines, output } = printed(randomSplit(random, bytes), { maxLineBytes: 40 })
      for (const line of lines) expect(line.toLowerCase(), `round ${round}`).not.toContain(TOKEN.toLowerCase())
      expect(simulateRunner(withoutStopCommands(output)).commands.map((c) => c.name)).toEqual(['group', 'endgroup'])
    }
  })

  it('never prints the token, split across chunks at any point, in a short or a long line', () => {
    for (const maxLineBytes of [4096, 32]) {
      const line = Buffer.from(`${'k'.repeat(20)}${TOKEN.toUpperCase()}${'m'.repeat(20)}${TOKEN}\n`)
      for (let point = 1; point < line.length; point++) {
        const { lines } = printed(splitAt(line, [point]), { maxLineBytes })
        // A token cut by a piece boundary leaves parts on two printed lines: harmless, never whole.
        for (const printedLine of lines) expect(printedLine.toLowerCase()).not.toContain(TOKEN.toLowerCase())
      }
    }
  })

  it('guards a piece that starts with "::" after any kind of whitespace', () => {
    for (const space of ['', ' ', '\t', '\u00a0', '\u0085', '\u1680', '\u2000', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff']) {
      const bytes = Buffer.from(`x\n${space}${space}::error::boom\n`)
      expect(printed([bytes]).lines, JSON.stringify(space)).toEqual(['x', guardLeadingCommand(`${space}${space}::error::boom`)])
    }
  })

  it('never cuts inside a character or a replacement, even with the smallest pieces', () => {
    const line = `${'é😀'.repeat(30)}##[${'\x01'.repeat(9)}${TOKEN}#`
    const { lines } = printed([Buffer.from(`${line}\n`)], { maxLineBytes: 23 })
    for (const piece of lines) {
      expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(23)
      expect(piece).not.toContain('\uFFFD')
    }
    expect(lines.join('|')).toContain('‹stop-token›')
  })

  it("prints the action's own notes as sanitised lines of their own, into the tail too", () => {
    const writes: string[] = []
    const log = new RemoteLog({ write: (text) => writes.push(text), newToken: () => TOKEN })
    const group = log.open('notes')
    group.write('stdout', Buffer.from('partial '))
    group.note(`output truncated at ::error:: ${TOKEN}\r\nby the service`)
    group.write('stdout', Buffer.from('line\n'))
    group.end('done')
    const sim = simulateRunner(writes.join(''))
    expect(sim.lines.slice(2, -3)).toEqual([`output truncated at ::error:: ‹stop-token› by the service`, 'partial line'])
    expect(simulateRunner(withoutStopCommands(writes.join(''))).commands.map((c) => c.name)).toEqual(['group', 'endgroup'])
    expect(group.tail()).toEqual([`output truncated at ::error:: ‹stop-token› by the service`, 'partial line'])
  })

  it('refuses a maxLineBytes too small for the longest replacement', () => {
    expect(() => new RemoteLog({ maxLineBytes: 22 })).toThrow(/maxLineBytes/)
  })
})

describe('RemoteLog to stdout', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('writes valid UTF-8 bytes, ill-formed input replaced exactly as a decoder replaces it', () => {
    const random = rng(13)
    for (let round = 0; round < 200; round++) {
      const written: Buffer[] = []
      const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
        written.push(Buffer.from(chunk))
        return true
      })
      const bytes = randomStream(random, 1 + Math.floor(random() * 6), 30, WITHOUT_TOKEN)
      const log = new RemoteLog({ newToken: () => TOKEN })
      const group = log.open('bytes')
      for (const chunk of randomSplit(random, bytes)) group.write('stdout', chunk)
      group.end('done')
      spy.mockRestore()
      // No decoding on the way to the assertion: the raw bytes must already be right.
      const raw = Buffer.concat(written)
      expect(isUtf8(raw), `round ${round}`).toBe(true)
      const lines = simulateRunner(raw.toString('utf8')).lines.slice(2, -3)
      expect(lines, `round ${round}`).toEqual(stringRules(bytes))
    }
  })

  it('holds the producer back while more than a MiB waits for stdout, until it is well under', async () => {
    const callbacks: (() => void)[] = []
    vi.spyOn(process.stdout, 'write').mockImplementation(((_chunk: unknown, callback?: () => void) => {
      // A slow reader: nothing is written until the test says so.
      if (callback) callbacks.push(callback)
      return false
    }) as typeof process.stdout.write)
    const group = new RemoteLog({ newToken: () => TOKEN }).open('slow')
    const line = Buffer.from(`${'z'.repeat(1023)}\n`)
    let written = 0
    while (group.ready() === undefined && written < 4096) {
      group.write('stdout', line)
      written++
    }
    // About a MiB went out before the producer was held back, in blocks.
    expect(written * line.length).toBeGreaterThanOrEqual(1024 * 1024)
    expect(written * line.length).toBeLessThan(1024 * 1024 + 2 * 64 * 1024)
    let released = false
    void group.ready()?.then(() => (released = true))
    // Writing most of it is not enough; getting under a quarter is.
    while (callbacks.length > 4) {
      callbacks.shift()?.()
      await new Promise((resolve) => setImmediate(resolve))
      if (released) break
    }
    expect(released).toBe(true)
    expect(callbacks.length).toBeLessThanOrEqual(5)
    for (const callback of callbacks.splice(0)) callback()
    expect(group.ready()).toBeUndefined()
  })

  it('hands waiting output over and closes the open window at once when the process is about to exit', () => {
    const written: Buffer[] = []
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(Buffer.from(chunk))
      return true
    })
    const log = new RemoteLog({ newToken: () => TOKEN })
    const group = log.open('exit')
    group.write('stdout', Buffer.from('last words\nunfinished'))
    log.afterWindow(() => process.stdout.write('Received SIGTERM while cancelling; exiting.\n'))
    expect(Buffer.concat(written).toString()).not.toContain('last words')
    closeLogsForExit()
    expect(group.ended).toBe(true)
    expect(Buffer.concat(written).toString()).toMatch(
      new RegExp(`last words\\nunfinished\\n::${TOKEN}::\\n::endgroup::\\n\\(output interrupted: the action is exiting\\)\\nReceived SIGTERM while cancelling; exiting\\.\\n$`),
    )
  })

  it('hands remote output over in blocks, at the latest one turn of the event loop later, in order', async () => {
    const written: Buffer[] = []
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(Buffer.from(chunk))
      return true
    })
    const log = new RemoteLog({ newToken: () => TOKEN })
    const group = log.open('batched')
    const header = written.length
    for (let i = 0; i < 1000; i++) group.write('stdout', Buffer.from(`line ${i}\n`))
    // A thousand small writes are far less than a block: nothing yet, then all of it at once.
    expect(written.length).toBe(header)
    await new Promise((resolve) => setImmediate(resolve))
    expect(written.length).toBe(header + 1)
    // A large burst goes out in full blocks while it is written.
    for (let i = 0; i < 1000; i++) group.write('stdout', Buffer.from(`${'y'.repeat(200)} ${i}\n`))
    expect(written.length).toBeGreaterThan(header + 2)
    group.write('stdout', Buffer.from('unfinished'))
    group.end('done')
    const output = Buffer.concat(written).toString('utf8')
    const sim = simulateRunner(output)
    expect(sim.commands.map((c) => c.name)).toEqual(['group', 'stop-commands', TOKEN, 'endgroup'])
    const lines = sim.lines.slice(2, -3)
    expect(lines).toEqual([
      ...Array.from({ length: 1000 }, (_, i) => `line ${i}`),
      ...Array.from({ length: 1000 }, (_, i) => `${'y'.repeat(200)} ${i}`),
      'unfinished',
    ])
    // Nothing was left for a later turn: the group's end went out last.
    await new Promise((resolve) => setImmediate(resolve))
    expect(Buffer.concat(written).toString('utf8')).toBe(output)
  })
})
