import { describe, expect, it } from 'vitest'
import { CONTINUATION_MARKER, RemoteLog, reportFailure, type RemoteLogOptions } from '../../src/output/remote-log.ts'
import { REDACTED_TOKEN } from '../../src/output/line-sanitizer.ts'
import { readRunnerLines, simulateRunner, withoutStopCommands } from './output-runner-simulator.ts'

const enc = new TextEncoder()

function harness(options: RemoteLogOptions = {}) {
  const writes: string[] = []
  let n = 0
  const tokens: string[] = []
  const log = new RemoteLog({
    write: (text) => writes.push(text),
    newToken: () => {
      const token = `tok${String(++n).padStart(4, '0')}a1b2c3d4e5f6`
      tokens.push(token)
      return token
    },
    ...options,
  })
  return { log, writes, tokens, output: () => writes.join('') }
}

/** The remote lines printed inside the (single) window of `output`. */
function windowLines(output: string): string[] {
  const sim = simulateRunner(output)
  const start = sim.commands.find((c) => c.name === 'stop-commands')
  const end = sim.commands.find((c) => c.kind === 'resume')
  if (start === undefined || end === undefined) throw new Error('no window')
  return sim.lines.slice(start.index + 1, end.index)
}

function chunksOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = []
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size))
  return chunks
}

const GUESSED_TOKEN = '0123456789abcdef0123456789abcdef'
// The harness's first token: a leaked token must be neutralised too (defence in depth).
const FIRST_TOKEN = 'tok0001a1b2c3d4e5f6'

const INJECTIONS: [string, string][] = [
  ['command at line start', '::error::x\n'],
  ['command after spaces', '   ::error::x\n'],
  ['command after tab', '\t::warning file=a.ts,line=1::x\n'],
  ['command after NBSP and NEL', '\u00a0::error::x\n\u0085::error::y\n'],
  ['endgroup', '::endgroup::\n'],
  ['nested stop-commands', '::stop-commands::other\nstill inside\n::other::\n::error::after\n'],
  ['guessed resume token', `::${GUESSED_TOKEN}::\n::error::after\n`],
  ['leaked resume token', `::${FIRST_TOKEN}::\n::error::after\n`],
  ['leaked token, other case', `  ::${FIRST_TOKEN.toUpperCase()}::\n::error::after\n`],
  ['leaked token, legacy form', `x ##[${FIRST_TOKEN}]\n::error::after\n`],
  ['leaked token, with properties', `::${FIRST_TOKEN} a=b::\n::error::after\n`],
  ['legacy error mid-line', 'building... ##[error]boom\n'],
  ['legacy group mid-line', 'x ##[group]fake\n'],
  ['legacy endgroup at start', '##[endgroup]\n'],
  ['triple hash', '###[error]x\n##[##[error]y\n'],
  ['carriage-return trick', 'progress 10%\r::error::x\n'],
  ['carriage-return legacy trick', 'ok\r##[error]x\r'],
  ['CRLF lines', 'line one\r\n::error::x\r\n'],
  ['escaped newline', 'a%0A::error::x\n%0A::error::y\n'],
  ['add-mask, set-output, save-state', '::add-mask::secret\n::set-output name=a::b\n::save-state name=s::v\n'],
  ['NUL and controls', 'nul\x00byte\x07bell\x1b[31mred\x1b[0m\x7f\n'],
  ['no final newline', 'done\n::error::unterminated'],
  ['vertical tab and form feed', '\x0b::error::x\n\x0c::error::y\n'],
]

describe('RemoteLog injection safety (runner simulator is the oracle)', () => {
  for (const [name, payload] of INJECTIONS) {
    for (const mode of ['one chunk', 'byte by byte', 'stderr'] as const) {
      it(`${name} (${mode})`, () => {
        const { log, output, tokens } = harness()
        const group = log.open('RUN test')
        const bytes = enc.encode(payload)
        if (mode === 'one chunk') group.write('stdout', bytes)
        else if (mode === 'stderr') group.write('stderr', bytes)
        else for (const c of chunksOf(bytes, 1)) group.write('stdout', c)
        group.end('✓ RUN test — exit 0 in 1.0 s')
        const text = output()
        const token = tokens[0] as string
        const sim = simulateRunner(text)

        // Exactly our four commands, in order, and nothing else processed.
        expect(sim.commands.map((c) => [c.kind, c.name, c.data])).toEqual([
          ['command', 'group', 'RUN test'],
          ['command', 'stop-commands', token],
          ['resume', token, ''],
          ['command', 'endgroup', ''],
        ])
        expect(sim.pausedAtEnd).toBe(false)

        // The token appears only in its two command lines (any case).
        const withToken = sim.lines.filter((l) => l.toLowerCase().includes(token.toLowerCase()))
        expect(withToken).toEqual([`::stop-commands::${token}`, `::${token}::`])

        // Defence in depth: even with the window removed, no remote line is a command.
        const bare = simulateRunner(withoutStopCommands(text))
        expect(bare.commands.map((c) => c.name)).toEqual(['group', 'endgroup'])

        // The status line is the last line, outside the group.
        expect(sim.lines.at(-1)).toBe('✓ RUN test — exit 0 in 1.0 s')
      })
    }
  }

  it('keeps ANSI colour sequences and makes NUL visible', () => {
    const { log, output } = harness()
    const group = log.open('colours')
    group.write('stdout', enc.encode('\x1b[31mred\x1b[0m a\x00b\n'))
    group.end('done')
    expect(windowLines(output())).toEqual(['\x1b[31mred\x1b[0m a\u2400b'])
  })

  it('prints lone-CR fragments as separate lines and treats CRLF (also split across chunks) as one end', () => {
    const { log, output } = harness()
    const group = log.open('cr')
    group.write('stdout', enc.encode('10%\r20%\r30%\nnext\r'))
    group.write('stdout', enc.encode('\nafter\r\r'))
    group.write('stdout', enc.encode('x\n'))
    group.end('done')
    expect(windowLines(output())).toEqual(['10%', '20%', '30%', 'next', 'after', '', 'x'])
  })

  it('uses a fresh token for every group and window', () => {
    const writes: string[] = []
    const log = new RemoteLog({ write: (t) => writes.push(t) }) // the real random token source
    const a = log.open('a')
    a.write('stdout', enc.encode('one\n'))
    a.end('a done')
    const b = log.open('b')
    b.write('stdout', enc.encode('two\n'))
    b.end('b done')
    log.reportFailure(b.tail(), 'failed')
    const sim = simulateRunner(writes.join(''))
    const starts = sim.commands.filter((c) => c.name === 'stop-commands').map((c) => c.data)
    expect(starts).toHaveLength(3)
    expect(new Set(starts).size).toBe(3)
    for (const token of starts) {
      expect(token).toMatch(/^[0-9a-f]{32}$/)
      expect(sim.lines.filter((l) => l.includes(token))).toEqual([`::stop-commands::${token}`, `::${token}::`])
    }
    expect(sim.commands.filter((c) => c.kind === 'resume').map((c) => c.name)).toEqual(starts)
  })

  it('escapes the group title into single-line command data', () => {
    const { log, output } = harness()
    log.open('50% of\r\n::error::x ##[error]y').end('done')
    const sim = simulateRunner(output())
    expect(sim.commands[0]).toMatchObject({ name: 'group', data: '50% of ::error::x #\u200B#[error]y' })
    expect(simulateRunner(withoutStopCommands(output())).commands.map((c) => c.name)).toEqual(['group', 'endgroup'])
  })

  it('keeps the status line single-line and inert', () => {
    const { log, output } = harness()
    log.open('t').end('✗ RUN x: remote said\n::error::forged ##[warning]w')
    const sim = simulateRunner(output())
    expect(sim.commands.map((c) => c.name).filter((n) => n === 'error' || n === 'warning')).toEqual([])
    expect(sim.lines.at(-1)).toContain('remote said')
  })

  it('rejects a token that the runner would refuse or could not mask', () => {
    for (const bad of ['short', 'stop-commands', 'has space here', 'colon::inside']) {
      const log = new RemoteLog({ write: () => {}, newToken: () => bad })
      expect(() => log.open('x')).toThrow(/token/)
    }
  })
})

describe('RemoteLog line assembly', () => {
  it('decodes multi-byte characters split across chunks without U+FFFD', () => {
    const text = 'a€b😀c日本\n'
    const bytes = enc.encode(text)
    for (let cut = 1; cut < bytes.length; cut++) {
      const { log, output } = harness()
      const group = log.open('utf8')
      group.write('stdout', bytes.subarray(0, cut))
      group.write('stdout', bytes.subarray(cut))
      group.end('done')
      expect(windowLines(output())).toEqual(['a€b😀c日本'])
    }
    const { log, output } = harness()
    const group = log.open('utf8')
    for (const c of chunksOf(bytes, 1)) group.write('stdout', c)
    group.end('done')
    expect(windowLines(output())).toEqual(['a€b😀c日本'])
  })

  it('turns invalid UTF-8 (and a truncated final character) into U+FFFD', () => {
    const { log, output } = harness()
    const group = log.open('bad')
    group.write('stdout', Uint8Array.of(0x61, 0xff, 0x62, 0x0a, 0x63, 0xe2, 0x82))
    group.end('done')
    expect(windowLines(output())).toEqual(['a\ufffdb', 'c\ufffd'])
  })

  it('splits a 1 MB single line into marked pieces of at most maxLineBytes that rebuild the input', () => {
    const line = 'abcdefghij'.repeat(100_000)
    for (const chunkSize of [line.length + 1, 65_536, 1000]) {
      const { log, output } = harness()
      const group = log.open('long')
      for (const c of chunksOf(enc.encode(`${line}\n`), chunkSize)) group.write('stdout', c)
      group.end('done')
      const pieces = windowLines(output())
      expect(pieces.length).toBeGreaterThan(200)
      for (const piece of pieces) expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(4096)
      for (const piece of pieces.slice(0, -1)) expect(piece.endsWith(CONTINUATION_MARKER)).toBe(true)
      expect(pieces.at(-1)?.endsWith(CONTINUATION_MARKER)).toBe(false)
      expect(pieces.map((p) => (p.endsWith(CONTINUATION_MARKER) ? p.slice(0, -CONTINUATION_MARKER.length) : p)).join('')).toBe(line)
    }
  })

  it('never cuts inside a multi-byte character and honours a small maxLineBytes', () => {
    const line = 'é€😀x'.repeat(5000)
    const { log, output } = harness({ maxLineBytes: 64 })
    const group = log.open('long')
    for (const c of chunksOf(enc.encode(line), 777)) group.write('stdout', c) // no final newline
    group.end('done')
    const pieces = windowLines(output())
    for (const piece of pieces) {
      expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(64)
      expect(piece).not.toContain('\ufffd')
    }
    expect(pieces.map((p) => p.replace(/ ↩$/, '')).join('')).toBe(line)
  })

  it('keeps pieces of a long line inert even when one starts with "::"', () => {
    const { log, output } = harness({ maxLineBytes: 32 })
    const group = log.open('long')
    // The cut falls right before "::error::".
    group.write('stdout', enc.encode(`${'x'.repeat(25)}::error::x ${'y'.repeat(40)}\n`))
    group.end('done')
    expect(simulateRunner(withoutStopCommands(output())).commands.map((c) => c.name)).toEqual(['group', 'endgroup'])
    for (const piece of windowLines(output())) expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(32)
  })

  it('assembles interleaved stdout/stderr partial lines per stream, printed in completion order', () => {
    const { log, output } = harness()
    const group = log.open('mix')
    group.write('stdout', enc.encode('out-1 '))
    group.write('stderr', enc.encode('err-1 '))
    group.write('stderr', enc.encode('err-2\nerr-3 '))
    group.write('stdout', enc.encode('out-2\n'))
    group.write('stdout', enc.encode('out-3 '))
    group.end('done')
    expect(windowLines(output())).toEqual(['err-1 err-2', 'out-1 out-2', 'out-3 ', 'err-3 '])
  })

  it('writes once per chunk that completes lines, and not at all for a partial chunk', () => {
    const { log, writes } = harness()
    const group = log.open('batch')
    const before = writes.length
    group.write('stdout', enc.encode('a\nb\nc\nd\npartial'))
    expect(writes.length).toBe(before + 1)
    group.write('stdout', enc.encode(' more'))
    expect(writes.length).toBe(before + 1)
  })

  it('ignores writes after end (they could only land outside the window)', () => {
    const { log, output } = harness()
    const group = log.open('t')
    group.end('done')
    group.write('stdout', enc.encode('::error::forged\n'))
    expect(output()).not.toContain('forged')
  })

  it('keeps the last N printed lines of both streams in a ring buffer', () => {
    const { log } = harness({ tailLines: 5 })
    const group = log.open('tail')
    for (let i = 1; i <= 100; i++) group.write(i % 2 ? 'stdout' : 'stderr', enc.encode(`line ${i}\n`))
    group.write('stdout', enc.encode('##[error]last'))
    group.end('done')
    expect(group.tail()).toEqual(['line 97', 'line 98', 'line 99', 'line 100', '#\u200B#[error]last'])
  })

  it('ends the open group before opening another (groups do not nest)', () => {
    const { log, output, tokens } = harness()
    const first = log.open('first')
    first.write('stdout', enc.encode('partial'))
    log.open('second').end('second done')
    expect(first.ended).toBe(true)
    const sim = simulateRunner(output())
    expect(sim.commands.map((c) => c.name)).toEqual([
      'group', 'stop-commands', tokens[0], 'endgroup', 'group', 'stop-commands', tokens[1], 'endgroup',
    ])
    expect(sim.lines).toContain('partial')
  })
})

describe('lines of the action\'s own from code that does not know about groups (afterWindow)', () => {
  it('are printed at once when no group is open', () => {
    const { log, writes } = harness()
    log.afterWindow(() => writes.push('Received SIGINT\n'))
    expect(writes.join('')).toBe('Received SIGINT\n')
  })

  it('wait for the open window and are printed after its group, never between the pieces of a cut line', () => {
    const { log, writes, output, tokens } = harness({ maxLineBytes: 40 })
    const group = log.open('Run: x')
    // A line longer than a piece, still unfinished: pieces ending in the marker are out, its rest is not.
    group.write('stdout', enc.encode('y'.repeat(100)))
    expect(output()).toContain(CONTINUATION_MARKER)
    log.afterWindow(() => writes.push('Received SIGINT: the job is being cancelled\n'))
    log.afterWindow(() => writes.push('::warning::Could not cancel run\n'))
    group.write('stdout', enc.encode('z\n'))
    expect(output()).not.toContain('Received SIGINT')
    group.end('✗ run: cancelled by SIGINT')
    const sim = simulateRunner(output())
    // The warning is a command the runner runs, after the window and its group.
    expect(sim.commands.map((c) => c.name)).toEqual(['group', 'stop-commands', tokens[0], 'endgroup', 'warning'])
    expect(output().endsWith('::endgroup::\n✗ run: cancelled by SIGINT\nReceived SIGINT: the job is being cancelled\n::warning::Could not cancel run\n')).toBe(true)
    // The cut line rebuilds whole.
    const rebuilt = windowLines(output())
      .map((line) => (line.endsWith(CONTINUATION_MARKER) ? line.slice(0, -CONTINUATION_MARKER.length) : `${line}\n`))
      .join('')
    expect(rebuilt).toBe(`${'y'.repeat(100)}z\n`)
  })

  it('raised while a group is open are printed when another group replaces it, before the new one opens', () => {
    const { log, writes, output } = harness()
    log.open('first')
    log.afterWindow(() => writes.push('between\n'))
    log.open('second').end('done')
    expect(output()).toMatch(/::endgroup::\n\(output interrupted: another group was opened\)\nbetween\n::group::second\n/)
  })
})

describe('reportFailure', () => {
  it('repeats the tail outside any group in its own window and returns the annotation text', () => {
    const { log, output, tokens } = harness()
    const group = log.open('RUN make')
    group.write('stdout', enc.encode('compiling\n::error::forged\nfatal: boom\n'))
    group.end('✗ RUN make — exit 2')
    const before = output().length
    const message = log.reportFailure(group.tail(), 'The command exited with code 2')
    expect(message).toBe('The command exited with code 2')
    const printed = output().slice(before)
    const sim = simulateRunner(printed)
    expect(sim.lines[0]).toBe('Last 3 lines of output:')
    expect(sim.commands.map((c) => [c.kind, c.name])).toEqual([
      ['command', 'stop-commands'],
      ['resume', tokens[1]],
    ])
    expect(tokens[1]).not.toBe(tokens[0])
    expect(sim.lines.slice(2, 5)).toEqual(['compiling', ':\u200B:error::forged', 'fatal: boom'])
    expect(simulateRunner(withoutStopCommands(printed)).commands).toEqual([])
  })

  it('prints nothing for an empty tail, and caps and neutralises the annotation message', () => {
    const writes: string[] = []
    const message = reportFailure([], `bad ##[error] ${'x'.repeat(5000)}`, { write: (t) => writes.push(t) })
    expect(writes).toEqual([])
    expect(message.length).toBeLessThanOrEqual(4096)
    expect(message).not.toContain('##[')
    expect(message.endsWith('…')).toBe(true)
  })

  it('re-sanitises lines it is given, whatever their source', () => {
    const writes: string[] = []
    reportFailure(['ok', 'a\r::error::x', '##[group]g'], 'm', { write: (t) => writes.push(t) })
    const text = writes.join('')
    expect(readRunnerLines(text)).toHaveLength(6)
    expect(simulateRunner(withoutStopCommands(text)).commands).toEqual([])
  })

  it('redacts a leaked token in remote text', () => {
    const { log, output } = harness()
    const group = log.open('t')
    group.write('stdout', enc.encode(`echo ${FIRST_TOKEN}\n`))
    group.end('done')
    expect(windowLines(output())).toEqual([`echo ${REDACTED_TOKEN}`])
  })
})
