import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BufferedSink, MemoryBudget } from '../../src/fanout/buffered-sink.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import type { OutputSink } from '../../src/providers/types.ts'

/** Output as base64 (quick to compare, unlike deep equality over large buffers), notes as text. */
type Event = { kind: 'stdout' | 'stderr'; base64: string } | { kind: 'note'; text: string }

/** Records what a sink receives; consecutive output of one stream is merged (chunking is not meaning). */
function recorder(): OutputSink & { readonly events: Event[] } {
  const parts: ({ kind: 'stdout' | 'stderr'; pieces: Buffer[] } | { kind: 'note'; text: string })[] = []
  return {
    get events(): Event[] {
      return parts.map((part) => (part.kind === 'note' ? part : { kind: part.kind, base64: Buffer.concat(part.pieces).toString('base64') }))
    },
    write(stream, chunk) {
      const last = parts.at(-1)
      if (last !== undefined && last.kind === stream) last.pieces.push(Buffer.from(chunk))
      else parts.push({ kind: stream, pieces: [Buffer.from(chunk)] })
    },
    note(text) {
      parts.push({ kind: 'note', text })
    },
  }
}

function output(kind: 'stdout' | 'stderr', data: Buffer): Event {
  return { kind, base64: data.toString('base64') }
}

/** A deterministic PRNG, so a failing case can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

/** Interleaved stdout/stderr of binary bytes, multi-byte text cut mid-character, big and tiny chunks, notes. */
function mixedOutput(seed: number, totalBytes: number): { feed: (sink: OutputSink) => void; expected: Event[] } {
  const random = prng(seed)
  const text = Buffer.from('héllo wörld ✓ 𝄞 日本語\r\nline\n'.repeat(64), 'utf8')
  const steps: (() => void)[] = []
  const reference = recorder()
  let sent = 0
  let sinkRef: OutputSink | undefined
  while (sent < totalBytes) {
    const roll = random()
    if (roll < 0.05) {
      const note = `note ${steps.length} ✓`
      steps.push(() => sinkRef?.note?.(note))
      reference.note?.(note)
      continue
    }
    const stream = roll < 0.55 ? 'stdout' : 'stderr'
    // Mostly small chunks, sometimes one larger than a 64 KiB block.
    const size = random() < 0.03 ? 70_000 + Math.floor(random() * 100_000) : 1 + Math.floor(random() * 3000)
    const chunk = Buffer.allocUnsafe(size)
    if (random() < 0.5) for (let i = 0; i < size; i++) chunk[i] = Math.floor(random() * 256)
    else for (let i = 0; i < size; i++) chunk[i] = text[(sent + i) % text.length] as number
    steps.push(() => sinkRef?.write(stream, chunk))
    reference.write(stream, chunk)
    sent += size
  }
  return {
    feed: (sink) => {
      sinkRef = sink
      for (const step of steps) step()
    },
    expected: reference.events,
  }
}

let dir: string
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fanout-sink-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

describe('BufferedSink', () => {
  it('replays stdout, stderr and notes byte for byte in arrival order while the output fits in memory', async () => {
    const { feed, expected } = mixedOutput(1, 400_000)
    const sink = new BufferedSink({ memoryLimitBytes: 10_000_000, directory: dir })
    feed(sink)
    expect(sink.spillPath).toBeUndefined()
    const target = recorder()
    await sink.replayInto(target)
    expect(target.events).toEqual(expected)
    expect(readdirSync(dir)).toEqual([])
  })

  for (const seed of [2, 3, 4]) {
    it(`spills to a file beyond its limit and replays byte for byte (seed ${seed}), then removes the file`, async () => {
      const { feed, expected } = mixedOutput(seed, 1_500_000)
      const sink = new BufferedSink({ memoryLimitBytes: 100_000, directory: dir })
      feed(sink)
      const file = sink.spillPath
      expect(file).toBeDefined()
      expect(path.dirname(file as string)).toBe(dir)
      expect(sink.memoryBytes).toBe(0)
      expect(sink.peakMemoryBytes).toBeLessThanOrEqual(100_000)
      const target = recorder()
      await sink.replayInto(target)
      expect(target.events).toEqual(expected)
      expect(existsSync(file as string)).toBe(false)
      expect(readdirSync(dir)).toEqual([])
    })
  }

  it('prints through a RemoteLogGroup exactly what the group prints when written to directly', async () => {
    const { feed } = mixedOutput(5, 300_000)
    const print = async (viaSink: boolean): Promise<string> => {
      const out: string[] = []
      const log = new RemoteLog({ write: (text) => out.push(text), newToken: () => 'token0123456789' })
      const group = log.open('run 1 of 1: make test')
      if (viaSink) {
        const sink = new BufferedSink({ memoryLimitBytes: 50_000, directory: dir })
        feed(sink)
        await sink.replayInto(group)
      } else {
        feed(group)
      }
      group.end('✓ done')
      return out.join('')
    }
    const direct = await print(false)
    expect(direct.length).toBeGreaterThan(200_000)
    expect(await print(true)).toBe(direct)
  })

  it('keeps the memory of all runs within a shared budget, spilling the runs that do not fit, and reuses blocks safely', async () => {
    const budget = new MemoryBudget(1_000_000)
    // Half the runs may keep all of theirs, until the shared budget says no.
    const sinks = Array.from({ length: 6 }, (_, i) => new BufferedSink({ memoryLimitBytes: i % 2 === 0 ? 10_000_000 : 100_000, budget, directory: dir }))
    const expected = sinks.map((_, i) => Buffer.alloc(150_000 * 3, 0x61 + i))
    // Three rounds: sinks replayed in one round hand their blocks to those still writing in the next.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 15; i++) sinks.forEach((sink, n) => sink.write('stdout', Buffer.alloc(10_000, 0x61 + n)))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    expect(budget.peakBytes).toBeLessThanOrEqual(1_000_000)
    expect(budget.peakBytes).toBeGreaterThan(800_000)
    const spilled = sinks.map((sink) => sink.spillPath !== undefined)
    expect(spilled).toContain(true)
    expect(spilled).toContain(false)
    const replayed = await Promise.all(
      sinks.map(async (sink) => {
        sink.close()
        const target = recorder()
        await sink.replayInto(target)
        return target.events
      }),
    )
    expect(replayed).toEqual(expected.map((data) => [output('stdout', data)]))
    expect(budget.usedBytes).toBe(0)
    expect(readdirSync(dir)).toEqual([])
  })

  it('never hands one block to two writers, whatever order runs end and replay in', async () => {
    const budget = new MemoryBudget(1_000_000)
    const random = prng(7)
    const live = new Map<number, { sink: BufferedSink; expected: Buffer[] }>()
    let next = 0
    for (let step = 0; step < 400; step++) {
      if (live.size < 4) live.set(next, { sink: new BufferedSink({ memoryLimitBytes: random() < 0.5 ? 50_000 : 1_000_000, budget, directory: dir }), expected: [] }), next++
      const ids = [...live.keys()]
      const id = ids[Math.floor(random() * ids.length)] as number
      const run = live.get(id)!
      if (random() < 0.1) {
        live.delete(id)
        const target = recorder()
        await run.sink.replayInto(target)
        expect(target.events).toEqual(run.expected.length === 0 ? [] : [output('stdout', Buffer.concat(run.expected))])
      } else {
        const chunk = Buffer.alloc(1 + Math.floor(random() * 40_000), (id % 250) + 1)
        run.sink.write('stdout', chunk)
        run.expected.push(chunk)
        if (random() < 0.3) await new Promise((resolve) => setImmediate(resolve))
      }
    }
    for (const run of live.values()) await run.sink.dispose()
    expect(readdirSync(dir)).toEqual([])
  })

  for (const [where, memoryLimitBytes] of [['memory', 1_000_000], ['a spill file', 1000]] as const) {
    it(`waits on the target’s backpressure while replaying from ${where}`, async () => {
      const sink = new BufferedSink({ memoryLimitBytes, directory: dir })
      sink.write('stdout', Buffer.alloc(200_000, 0x62))
      let writes = 0
      let release: (() => void) | undefined
      const target: OutputSink = {
        write: () => void writes++,
        ready: () => (release === undefined ? new Promise<void>((resolve) => (release = resolve)) : undefined),
      }
      const replay = sink.replayInto(target)
      for (let i = 0; i < 50 && release === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 5))
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
      expect(writes).toBe(1)
      release?.()
      await replay
      expect(writes).toBeGreaterThan(1)
    })
  }

  it('asks the producer to wait while the spill file’s write queue is full', async () => {
    const sink = new BufferedSink({ memoryLimitBytes: 0, directory: dir })
    expect(sink.ready()).toBeUndefined()
    sink.write('stdout', Buffer.alloc(1_000_000, 0x63))
    const wait = sink.ready()
    expect(wait).toBeInstanceOf(Promise)
    await wait
    await sink.dispose()
  })

  it('removes the file when replay fails', async () => {
    const sink = new BufferedSink({ memoryLimitBytes: 1000, directory: dir })
    sink.write('stdout', Buffer.alloc(100_000, 0x64))
    expect(sink.spillPath).toBeDefined()
    const target: OutputSink = {
      write: () => {
        throw new Error('log writer broke')
      },
    }
    await expect(sink.replayInto(target)).rejects.toThrow('log writer broke')
    expect(readdirSync(dir)).toEqual([])
  })

  it('removes the file when disposed without replay', async () => {
    const sink = new BufferedSink({ memoryLimitBytes: 1000, directory: dir })
    sink.write('stderr', Buffer.alloc(100_000, 0x65))
    const file = sink.spillPath as string
    expect(file).toBeDefined()
    while (!existsSync(file)) await new Promise((resolve) => setTimeout(resolve, 1))
    await sink.dispose()
    expect(readdirSync(dir)).toEqual([])
  })

  it('leaves no file behind when disposed the moment it spilled (before the file was even opened)', async () => {
    // Many at once, so opens and removals compete for the threadpool as they do under load.
    const sinks = Array.from({ length: 200 }, () => new BufferedSink({ memoryLimitBytes: 1000, directory: dir }))
    for (const sink of sinks) sink.write('stdout', Buffer.alloc(100_000, 0x68))
    await Promise.all(sinks.map((sink) => sink.dispose()))
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(readdirSync(dir)).toEqual([])
  })

  it('says so in the output when the spill file cannot be written, instead of failing', async () => {
    const sink = new BufferedSink({ memoryLimitBytes: 1000, directory: path.join(dir, 'missing') })
    sink.write('stdout', Buffer.from('first line\n'.repeat(200)))
    const target = recorder()
    await sink.replayInto(target)
    const last = target.events.at(-1)
    expect(last?.kind).toBe('note')
    expect(last?.kind === 'note' && last.text).toMatch(/some of this run's output is missing: it could not be kept on disk \(.*ENOENT/)
  })

  it('spills under RUNNER_TEMP by default', async () => {
    const saved = process.env['RUNNER_TEMP']
    process.env['RUNNER_TEMP'] = dir
    try {
      const sink = new BufferedSink({ memoryLimitBytes: 10 })
      sink.write('stdout', Buffer.alloc(100_000, 0x66))
      expect(path.dirname(sink.spillPath as string)).toBe(dir)
      await sink.dispose()
    } finally {
      if (saved === undefined) delete process.env['RUNNER_TEMP']
      else process.env['RUNNER_TEMP'] = saved
    }
  })

  it('ignores output that arrives after it was closed', async () => {
    const sink = new BufferedSink({ directory: dir })
    sink.write('stdout', Buffer.from('kept\n'))
    sink.close()
    sink.write('stdout', Buffer.from('late\n'))
    sink.note('late note')
    const target = recorder()
    await sink.replayInto(target)
    expect(target.events).toEqual([output('stdout', Buffer.from('kept\n'))])
  })

  it('keeps empty and block-sized notes whole', async () => {
    const sink = new BufferedSink({ memoryLimitBytes: 1_000_000, directory: dir })
    const long = 'ü'.repeat(40_000)
    sink.write('stdout', Buffer.alloc(60_000, 0x67))
    sink.note('')
    sink.note(long)
    sink.write('stdout', Buffer.from('after\n'))
    const target = recorder()
    await sink.replayInto(target)
    expect(target.events).toEqual([
      output('stdout', Buffer.alloc(60_000, 0x67)),
      { kind: 'note', text: '' },
      { kind: 'note', text: long },
      output('stdout', Buffer.from('after\n')),
    ])
  })
})
