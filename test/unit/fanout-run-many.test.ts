import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { FanoutTask } from '../../src/fanout/plan.ts'
import { RUN_ERROR_ANNOTATIONS, runMany, type FanoutClock, type RunManyOptions, type RunOne } from '../../src/fanout/run-many.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import { OperationInterruptedError, type OperationOutcome } from '../../src/providers/types.ts'

const enc = new TextEncoder()
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
async function ticks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await tick()
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

function tasks(n: number): FanoutTask[] {
  return Array.from({ length: n }, (_, index) => ({ index, label: `run ${index + 1} of ${n}`, command: `task-${index}`, shell: true, env: {} }))
}

function outcome(id: string, exitCode: number | null, status: OperationOutcome['status'] = 'SUCCESS'): OperationOutcome {
  return { operationId: id, status, exitCode, timedOut: false, error: status === 'FAILED' ? 'no capacity' : null, resultImage: null, durationMs: 1500 }
}

/** A clock the test moves by hand; progress ticks fire only when the test says so. */
function manualClock(): FanoutClock & { fire(): void; advance(ms: number): void } {
  let now = 0
  const ticks = new Set<() => void>()
  return {
    now: () => now,
    every: (_ms, tick) => {
      ticks.add(tick)
      return () => ticks.delete(tick)
    },
    fire: () => {
      for (const tick of ticks) tick()
    },
    advance: (ms) => {
      now += ms
    },
  }
}

/**
 * Everything the engine prints, in one stream: the log writer's text and the printer's lines (tagged),
 * so the order between groups and plain lines can be checked. The log's backpressure can be held.
 */
function harness() {
  const out: string[] = []
  let hold: ReturnType<typeof deferred<void>> | undefined
  let n = 0
  const log = new RemoteLog({
    write: (text) => out.push(text),
    ready: () => hold?.promise,
    newToken: () => `tok${String(++n).padStart(4, '0')}abcdef`,
  })
  const printed = { info: [] as string[], error: [] as string[], warning: [] as string[] }
  const printer = {
    info: (line: string) => {
      printed.info.push(line)
      out.push(`INFO ${line}\n`)
    },
    error: (message: string) => {
      printed.error.push(message)
      out.push(`ERROR ${message}\n`)
    },
    warning: (message: string) => {
      printed.warning.push(message)
      out.push(`WARNING ${message}\n`)
    },
  }
  const clock = manualClock()
  return {
    out,
    printed,
    clock,
    /** Until released, the log says its destination is full. */
    holdLog: () => {
      hold = deferred<void>()
      return () => {
        const held = hold
        hold = undefined
        held?.resolve()
      }
    },
    options: <T extends FanoutTask>(runOne: RunOne<T>, taskList: T[], extra: Partial<RunManyOptions<T>> = {}): RunManyOptions<T> => ({
      tasks: taskList,
      maxParallel: taskList.length,
      failFast: false,
      runOne,
      log,
      printer,
      clock,
      ...extra,
    }),
  }
}

interface Group {
  title: string
  body: string[]
}

/**
 * Reads the printed stream back: groups with their body lines, and the plain lines, failing on a
 * group opened inside another or any line of the engine's own (INFO/ERROR/WARNING) inside a group.
 */
function parse(out: readonly string[]): { groups: Group[]; plain: string[] } {
  const lines = out.join('').split('\n')
  const groups: Group[] = []
  const plain: string[] = []
  let open: Group | undefined
  for (const line of lines) {
    if (line.startsWith('::group::')) {
      if (open !== undefined) throw new Error(`group "${line}" opened inside "${open.title}"`)
      open = { title: line.slice('::group::'.length), body: [] }
      groups.push(open)
    } else if (line === '::endgroup::') {
      if (open === undefined) throw new Error('endgroup without a group')
      open = undefined
    } else if (open !== undefined) {
      if (/^(INFO|ERROR|WARNING) /.test(line)) throw new Error(`"${line}" printed inside group "${open.title}"`)
      if (!line.startsWith('::stop-commands::') && !/^::tok\d+abcdef::$/.test(line)) open.body.push(line)
    } else if (line !== '') {
      plain.push(line)
    }
  }
  if (open !== undefined) throw new Error(`group "${open.title}" never closed`)
  return { groups, plain }
}

/** A fake run that streams a few lines on both streams, and ends when the test says so. */
function controlledRuns(n: number) {
  const ends = Array.from({ length: n }, () => deferred<OperationOutcome>())
  const started: number[] = []
  const signals: AbortSignal[] = []
  const runOne: RunOne<FanoutTask> = async (task, sink, signal) => {
    started.push(task.index)
    signals[task.index] = signal
    for (let line = 0; line < 3; line++) {
      sink.write(line === 1 ? 'stderr' : 'stdout', enc.encode(`task ${task.index} line ${line}\n`))
      await tick()
    }
    return ends[task.index]!.promise
  }
  return { runOne, ends, started, signals }
}

let dir: string
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fanout-run-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

describe('runMany', () => {
  it('writes each run as one whole group when it ends, in the order runs end, never interleaved', async () => {
    const h = harness()
    const runs = controlledRuns(5)
    const done = runMany(h.options(runs.runOne, tasks(5)))
    await ticks(10)
    // Nothing is printed while runs are in flight: output waits for its run to end.
    expect(parse(h.out).groups).toEqual([])
    for (const index of [3, 1, 4, 0, 2]) {
      runs.ends[index]!.resolve(outcome(`op-${index}`, 0))
      await ticks(3)
    }
    const result = await done
    const { groups } = parse(h.out)
    expect(groups.map((group) => group.title)).toEqual(['run 4 of 5: task-3', 'run 2 of 5: task-1', 'run 5 of 5: task-4', 'run 1 of 5: task-0', 'run 3 of 5: task-2'])
    for (const group of groups) {
      const index = Number(/task-(\d)/.exec(group.title)?.[1])
      expect(group.body).toEqual([`task ${index} line 0`, `task ${index} line 1`, `task ${index} line 2`])
    }
    expect(result.failure).toBeNull()
    expect(result.counts).toEqual({ total: 5, succeeded: 5, failed: 0, cancelled: 0, notStarted: 0 })
    expect(result.results.map((r) => [r.task.index, r.state, r.words, r.operationId])).toEqual(
      [0, 1, 2, 3, 4].map((i) => [i, 'succeeded', 'exit code 0', `op-${i}`]),
    )
    expect(h.out.join('')).toContain('✓ run 4 of 5: exit code 0 in 1.5 s (operation op-3)')
  })

  it('makes a run that ends while another group is being written wait for that group to close', async () => {
    const h = harness()
    const runs = controlledRuns(2)
    const done = runMany(h.options(runs.runOne, tasks(2)))
    await ticks(10)
    const release = h.holdLog()
    runs.ends[0]!.resolve(outcome('op-0', 0))
    await ticks(5)
    // The first group is open and waiting on the log's backpressure.
    expect(h.out.join('')).toContain('::group::run 1 of 2')
    expect(h.out.join('')).not.toContain('::endgroup::')
    runs.ends[1]!.resolve(outcome('op-1', 0))
    await ticks(10)
    expect(h.out.join('')).not.toContain('::group::run 2 of 2')
    release()
    await done
    expect(parse(h.out).groups.map((group) => group.title)).toEqual(['run 1 of 2: task-0', 'run 2 of 2: task-1'])
  })

  it('prints progress between groups only: at once when none is open, else once right after it closes', async () => {
    const h = harness()
    const runs = controlledRuns(3)
    const done = runMany(h.options(runs.runOne, tasks(3), { maxParallel: 2 }))
    await ticks(10)
    h.clock.fire()
    expect(h.printed.info).toEqual(['fan-out: 0/3 done (0 failed), 2 running, 1 waiting'])
    const release = h.holdLog()
    runs.ends[0]!.resolve(outcome('op-0', 2))
    await ticks(10)
    // A group is open: progress waits, and a second tick replaces the first rather than adding to it.
    h.clock.fire()
    h.clock.fire()
    expect(h.printed.info).toHaveLength(1)
    release()
    await ticks(10)
    expect(h.printed.info.at(-1)).toBe('fan-out: 1/3 done (1 failed), 2 running')
    expect(h.printed.info).toHaveLength(2)
    runs.ends[1]!.resolve(outcome('op-1', 0))
    runs.ends[2]!.resolve(outcome('op-2', 0))
    await done
    // parse() fails on any engine line inside a group.
    expect(parse(h.out).groups).toHaveLength(3)
    // No progress line once nothing runs.
    h.clock.fire()
    expect(h.printed.info.filter((line) => line.includes('running'))).toHaveLength(2)
  })

  it('keeps at most max-parallel runs in flight and starts them in plan order', async () => {
    const h = harness()
    let active = 0
    let peak = 0
    const order: number[] = []
    const runOne: RunOne<FanoutTask> = async (task) => {
      order.push(task.index)
      active++
      peak = Math.max(peak, active)
      await ticks(1 + ((task.index * 7) % 5))
      active--
      return outcome(`op-${task.index}`, 0)
    }
    const result = await runMany(h.options(runOne, tasks(12), { maxParallel: 3 }))
    expect(peak).toBe(3)
    expect(order).toEqual([...Array(12).keys()])
    expect(result.counts.succeeded).toBe(12)
  })

  it('with fail-fast, stops at the first failure: aborts the running runs, starts no more, and waits for every started run', async () => {
    const h = harness()
    const runs = controlledRuns(6)
    let settledAfterAbort = false
    const aborted = deferred()
    const runOne: RunOne<FanoutTask> = async (task, sink, signal) => {
      if (task.index === 1) {
        // The provider cancels remotely and takes a moment to settle.
        signal.addEventListener('abort', () => aborted.resolve())
        await aborted.promise
        await ticks(20)
        settledAfterAbort = true
        return outcome('op-1', null, 'CANCELLED')
      }
      return runs.runOne(task, sink, signal)
    }
    let finished = false
    const done = runMany(h.options(runOne, tasks(6), { maxParallel: 3, failFast: true })).finally(() => {
      finished = true
    })
    await ticks(10)
    runs.ends[0]!.resolve(outcome('op-0', 1))
    await ticks(5)
    expect(runs.signals[2]?.aborted).toBe(true)
    // Run 3 ignores its signal for now: the step's verdict waits for it.
    await ticks(30)
    expect(settledAfterAbort).toBe(true)
    expect(finished).toBe(false)
    runs.ends[2]!.reject(new Error('aborted'))
    const result = await done
    expect(runs.started).toEqual([0, 2])
    expect(result.stoppedBy).toEqual({ kind: 'fail-fast', failedLabel: 'run 1 of 6' })
    expect(result.results.map((r) => r.state)).toEqual(['failed', 'cancelled', 'cancelled', 'not-started', 'not-started', 'not-started'])
    expect(result.results[1]?.words).toBe('cancelled (fail-fast after run 1 of 6 failed)')
    expect(result.failure).toBe('1 of 6 runs failed: run 1 of 6 (failed with exit code 1); 2 cancelled and 3 not started (fail-fast after run 1 of 6 failed).')
    expect(h.printed.info).toContain('fan-out: stopping (fail-fast after run 1 of 6 failed): cancelling 2 running run(s); 3 will not start.')
    expect(h.printed.error).toHaveLength(1)
    expect(parse(h.out).groups).toHaveLength(3)
  })

  it('without fail-fast, lets every run finish and fails the step afterwards', async () => {
    const h = harness()
    const runOne: RunOne<FanoutTask> = async (task) => outcome(`op-${task.index}`, task.index % 2)
    const result = await runMany(h.options(runOne, tasks(4), { maxParallel: 2 }))
    expect(result.results.map((r) => r.state)).toEqual(['succeeded', 'failed', 'succeeded', 'failed'])
    expect(result.stoppedBy).toBeNull()
    expect(result.failure).toBe('2 of 4 runs failed: run 2 of 4 (failed with exit code 1), run 4 of 4 (failed with exit code 1).')
  })

  it('on the job’s signal (SIGINT), starts nothing more, aborts every running run, and waits for them', async () => {
    const h = harness()
    const runs = controlledRuns(5)
    const job = new AbortController()
    const runOne: RunOne<FanoutTask> = async (task, sink, signal) => {
      const result = runs.runOne(task, sink, signal)
      signal.addEventListener('abort', () => runs.ends[task.index]!.resolve(outcome(`op-${task.index}`, null, 'CANCELLED')))
      return result
    }
    const done = runMany(h.options(runOne, tasks(5), { maxParallel: 2, signal: job.signal, failFast: false }))
    await ticks(10)
    job.abort()
    const result = await done
    expect(runs.started).toEqual([0, 1])
    expect(result.stoppedBy).toEqual({ kind: 'cancelled' })
    expect(result.results.map((r) => r.state)).toEqual(['cancelled', 'cancelled', 'not-started', 'not-started', 'not-started'])
    expect(result.failure).toBe('The job was cancelled: 0 of 5 runs had succeeded; 2 cancelled and 3 not started.')
    // The output they streamed before the cancel is still shown.
    expect(parse(h.out).groups.map((group) => group.body.length)).toEqual([3, 3])
    expect(h.printed.error).toEqual([])
  })

  it('starts nothing when the job was cancelled before it began', async () => {
    const h = harness()
    const runs = controlledRuns(2)
    const result = await runMany(h.options(runs.runOne, tasks(2), { signal: AbortSignal.abort() }))
    expect(runs.started).toEqual([])
    expect(result.results.map((r) => r.words)).toEqual(['not started (the job was cancelled)', 'not started (the job was cancelled)'])
  })

  it(`raises at most ${RUN_ERROR_ANNOTATIONS} error annotations for failed runs, leaving the tenth for the step`, async () => {
    const h = harness()
    const runOne: RunOne<FanoutTask> = async (task, sink) => {
      sink.write('stderr', enc.encode(`boom ${task.index}\n`))
      return outcome(`op-${task.index}`, 3)
    }
    const result = await runMany(h.options(runOne, tasks(15), { maxParallel: 4 }))
    expect(h.printed.error).toHaveLength(RUN_ERROR_ANNOTATIONS)
    expect(h.printed.error[0]).toBe('run 1 of 15 exited with code 3; the sandbox itself ran fine, the command failed (operation op-0)')
    expect(h.printed.info.filter((line) => line.startsWith('More runs failed than GitHub shows'))).toHaveLength(1)
    // Each annotated run's last lines are repeated outside its group.
    expect(parse(h.out).plain.filter((line) => line.startsWith('Last 1 line of output'))).toHaveLength(RUN_ERROR_ANNOTATIONS)
    expect(result.failure).toMatch(/^15 of 15 runs failed: run 1 of 15 \(failed with exit code 3\), run 2 of 15 .*, run 3 of 15 .* and 12 more\.$/)
  })

  it('with fail-on-exit-code false, shows a non-zero exit as failed without failing the step', async () => {
    const h = harness()
    const runOne: RunOne<FanoutTask> = async (task) => outcome(`op-${task.index}`, task.index)
    const result = await runMany(h.options(runOne, tasks(2), { failOnExitCode: false }))
    expect(result.results.map((r) => [r.state, r.failsStep])).toEqual([
      ['succeeded', false],
      ['failed', false],
    ])
    expect(result.failure).toBeNull()
    expect(h.printed.error).toEqual([])
    expect(h.printed.info).toContain('run 2 of 2 exited with code 1; the sandbox itself ran fine, the command failed (operation op-1). fail-on-exit-code is false, so the step continues.')
  })

  it('reports a run that threw as failed, with the operation it lost and the time it was in flight', async () => {
    const h = harness()
    const runOne: RunOne<FanoutTask> = async (task, sink) => {
      sink.write('stdout', enc.encode('started\n'))
      h.clock.advance(2500)
      throw new OperationInterruptedError({ operationId: 'op-lost', label: task.label, lastStatus: 'EXECUTING', message: `${task.label}: lost track of operation op-lost` })
    }
    const result = await runMany(h.options(runOne, tasks(1)))
    expect(result.results[0]).toMatchObject({ state: 'failed', failsStep: true, operationId: 'op-lost', durationMs: 2500, message: 'run 1 of 1: lost track of operation op-lost' })
    expect(h.out.join('')).toContain('✗ run 1 of 1: lost track of operation op-lost in 2.5 s (operation op-lost)')
    expect(parse(h.out).groups[0]?.body).toEqual(['started'])
  })

  it('raises the service’s notices as warnings once the group is closed', async () => {
    const h = harness()
    const runOne: RunOne<FanoutTask> = async (task, sink) => {
      sink.note?.('[output truncated by the service]')
      return { ...outcome(`op-${task.index}`, 0), notices: ['[output truncated by the service]'] }
    }
    await runMany(h.options(runOne, tasks(12)))
    expect(h.printed.warning).toHaveLength(10)
    expect(h.printed.warning[0]).toBe('run 1 of 12: [output truncated by the service]')
    expect(parse(h.out).groups[0]?.body).toEqual(['[output truncated by the service]'])
  })

  it('spills large outputs to files, writes each whole, and leaves no file behind', async () => {
    const h = harness()
    const line = 'x'.repeat(99) + '\n'
    const runOne: RunOne<FanoutTask> = async (task, sink) => {
      for (let i = 0; i < 3000; i++) {
        sink.write(i % 2 === 0 ? 'stdout' : 'stderr', enc.encode(line))
        if (i % 100 === 0) await sink.ready?.()
      }
      return outcome(`op-${task.index}`, 0)
    }
    const result = await runMany(h.options(runOne, tasks(6), { maxParallel: 3, output: { memoryLimitBytes: 20_000, totalMemoryBytes: 50_000, directory: dir } }))
    expect(result.counts.succeeded).toBe(6)
    for (const group of parse(h.out).groups) expect(group.body).toHaveLength(3000)
    expect(readdirSync(dir)).toEqual([])
  })

  it('still writes the other groups, keeps the verdict and removes every file when one group cannot be written', async () => {
    const h = harness()
    let opened = 0
    const log = new RemoteLog({
      write: (text) => h.out.push(text),
      newToken: () => {
        if (++opened === 1) throw new Error('no token today')
        return `tok${String(opened).padStart(4, '0')}abcdef`
      },
    })
    const runOne: RunOne<FanoutTask> = async (task, sink) => {
      sink.write('stdout', Buffer.alloc(50_000, 0x61 + task.index))
      await ticks(task.index * 3)
      return outcome(`op-${task.index}`, task.index === 0 ? 1 : 0)
    }
    const result = await runMany({ ...h.options(runOne, tasks(3), { output: { memoryLimitBytes: 1000, directory: dir } }), log })
    expect(result.results.map((r) => r.state)).toEqual(['failed', 'succeeded', 'succeeded'])
    expect(h.printed.warning).toEqual(['fan-out: the log of run 1 of 3 could not be written: no token today'])
    expect(h.printed.error).toEqual(['run 1 of 3 exited with code 1; the sandbox itself ran fine, the command failed (operation op-0)'])
    expect(parse(h.out).groups.map((group) => group.title)).toEqual(['run 2 of 3: task-1', 'run 3 of 3: task-2'])
    expect(readdirSync(dir)).toEqual([])
  })

  it('keeps memory bounded however much the runs print: 50 runs × 10 MB through 10 lanes', async () => {
    const MB = 1024 * 1024
    let logBytes = 0
    let groups = 0
    const log = new RemoteLog({
      write: (text) => {
        logBytes += text.length
        if (text.includes('::endgroup::')) groups++
      },
    })
    const h = harness()
    // 64 KiB of 1 KiB lines: the log writer's cost is per line, and this test is about what the engine keeps.
    const chunk = enc.encode(`${'fan-out memory test '.repeat(51)}abc\n`.repeat(64))
    const chunksPerRun = (10 * MB) / chunk.byteLength
    // Live memory only: garbage the collector has not reclaimed yet says nothing about what is kept.
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const live = (): number => {
      // Twice: array buffers freed by the first collection are swept concurrently, and counted until then.
      gc()
      gc()
      const usage = process.memoryUsage()
      return usage.heapUsed + usage.arrayBuffers
    }
    const baseline = live()
    let peakGrowth = 0
    const sample = (): void => {
      peakGrowth = Math.max(peakGrowth, live() - baseline)
    }
    const runOne: RunOne<FanoutTask> = async (task, sink) => {
      for (let i = 0; i < chunksPerRun; i++) {
        sink.write('stdout', chunk)
        await sink.ready?.()
        if ((i + 1) % (chunksPerRun / 2) === 0) {
          // A full collection is slow; every fifth run samples, which still sees every sink held at that moment.
          if (task.index % 5 === 0) sample()
          await tick()
        }
      }
      return outcome(`op-${task.index}`, 0)
    }
    const result = await runMany({ ...h.options(runOne, tasks(50), { maxParallel: 10, output: { directory: dir } }), log })
    sample()
    expect(result.counts.succeeded).toBe(50)
    expect(groups).toBe(50)
    expect(logBytes).toBeGreaterThan(50 * 10 * MB)
    // 500 MB went through. Measured ≈ 7 MB live at most; ≈ 106 MB when nothing spills.
    expect(peakGrowth).toBeLessThan(32 * MB)
    expect(readdirSync(dir)).toEqual([])
  })
})
