/**
 * End-to-end: a fan-out (`runs`, or `run` over `shards`) through the bundled action, run the way the
 * runner runs it, against the ConTree emulator. What is in flight is counted on the emulator: each
 * run is one `instance` operation there, live until it reaches a terminal status.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator, OperationRecordView } from '../emulator/contree/types.ts'
import { eventually } from '../helpers/wait.ts'
import { runAction, runPost, startAction, type ActionResult } from '../helpers/run-action.ts'

const TOKEN = 'tok-fanout-Yh3k9Q'
let emulator: ContreeEmulator
let operationsBefore = 0

beforeAll(async () => {
  emulator = await startContreeEmulator({ token: TOKEN, keepaliveMs: 200 })
})
afterAll(async () => {
  await emulator?.close()
})
beforeEach(() => {
  emulator.reset()
  operationsBefore = emulator.operations().length
})

function inputs(extra: Record<string, string>): Record<string, string> {
  return { 'api-url': emulator.url, token: TOKEN, image: 'tag:busybox:latest', ...extra }
}

const LIVE: ReadonlySet<string> = new Set(['PENDING', 'ASSIGNED', 'EXECUTING'])
/** The runs this test started, as the service sees them. */
const runOperations = (): OperationRecordView[] => emulator.operations().slice(operationsBefore).filter((op) => op.kind === 'instance')
const deletesOf = (uuid: string) => emulator.requests.filter((r) => r.method === 'DELETE' && r.path.includes(uuid))
const liveRuns = (): number => runOperations().filter((op) => LIVE.has(op.status)).length

/**
 * Samples how many runs are live on the service until stopped, keeping the highest count seen. The
 * bound it checks holds at every instant, so sampling can only miss an excess, never invent one.
 */
function watchConcurrency(): { stop: () => number } {
  let peak = 0
  const timer = setInterval(() => {
    peak = Math.max(peak, liveRuns())
  }, 5)
  return {
    stop: () => {
      clearInterval(timer)
      return Math.max(peak, liveRuns())
    },
  }
}

interface RunResultOutput {
  index: number
  label: string
  state: string
  'exit-code': number | null
  operation: string | null
}

const results = (result: ActionResult): RunResultOutput[] => JSON.parse(result.outputs.results ?? '[]') as RunResultOutput[]

/** Each group of the log: its title and the lines inside it, in order. */
function groups(stdout: string): { title: string; lines: string[] }[] {
  const found: { title: string; lines: string[] }[] = []
  let open: { title: string; lines: string[] } | undefined
  for (const line of stdout.split('\n')) {
    if (line.startsWith('::group::')) {
      expect(open, `a group opened inside "${open?.title}"`).toBeUndefined()
      open = { title: line.slice('::group::'.length), lines: [] }
    } else if (line === '::endgroup::') {
      expect(open, 'an endgroup without a group').toBeDefined()
      found.push(open as { title: string; lines: string[] })
      open = undefined
    } else if (open) {
      open.lines.push(line)
    }
  }
  expect(open, 'a group left open').toBeUndefined()
  return found
}

describe('fan-out through the bundle (ConTree)', () => {
  it('shards: each run in its own group, one failing shard fails the step after every run ended, max-parallel held', async () => {
    // Each shard prints a line, waits, prints another: interleaving runs would mix their lines.
    const command = 'echo "begin $SHARD_INDEX/$SHARD_COUNT"; sleep 0.5; echo "end $SHARD_INDEX"; [ "$SHARD_INDEX" != 2 ] || exit 5'
    const watch = watchConcurrency()
    const result = await runAction({ inputs: inputs({ run: command, shards: '5', 'max-parallel': '2' }) })
    const peak = watch.stop()
    expect(result.exitCode, result.stdout).not.toBe(0)

    // Every run had ended when the step ended, the failing one did not stop the others.
    expect(runOperations()).toHaveLength(5)
    expect(liveRuns()).toBe(0)
    expect(peak).toBeLessThanOrEqual(2)
    expect(peak).toBeGreaterThanOrEqual(1)

    const shardGroups = groups(result.stdout).filter((group) => /^shard \d of 5: /.test(group.title))
    expect(shardGroups.map((group) => group.title.slice(0, 'shard 0 of 5'.length)).sort()).toEqual(['shard 0 of 5', 'shard 1 of 5', 'shard 2 of 5', 'shard 3 of 5', 'shard 4 of 5'])
    for (const group of shardGroups) {
      const index = /^shard (\d)/.exec(group.title)?.[1]
      const printed = group.lines.filter((line) => /^(begin|end) /.test(line))
      // Only its own lines, both of them, in order.
      expect(printed, group.title).toEqual([`begin ${index}/5`, `end ${index}`])
    }
    expect(result.stdout).toMatch(/✗ shard 2 of 5: .*exit(ed with)? code 5/)

    // The step's error comes after the last group: the verdict waits for every run.
    const lastGroupEnd = result.stdout.lastIndexOf('::endgroup::')
    const stepError = result.stdout.search(/::error::1 of 5 runs failed: shard 2 of 5/)
    expect(stepError).toBeGreaterThan(lastGroupEnd)

    expect(result.outputs.status).toBe('FAILED')
    const runs = results(result)
    expect(runs.map((run) => [run.label, run.state, run['exit-code']])).toEqual([
      ['shard 0 of 5', 'succeeded', 0],
      ['shard 1 of 5', 'succeeded', 0],
      ['shard 2 of 5', 'failed', 5],
      ['shard 3 of 5', 'succeeded', 0],
      ['shard 4 of 5', 'succeeded', 0],
    ])
    expect(new Set(runs.map((run) => run.operation))).toEqual(new Set(runOperations().map((op) => op.uuid)))

    // The summary table: one row per run, with its result, exit code and operation.
    expect(result.summary).toMatch(/5 runs: 4 succeeded, 1 failed, 0 cancelled, 0 not started/)
    for (const run of runs) {
      const row = result.summary.split('\n').find((line) => line.includes(`| ${run.label} |`))
      expect(row, run.label).toBeDefined()
      expect(row).toContain(`| ${run['exit-code']} |`)
      expect(row).toContain(run.operation as string)
    }
  })

  it('groups never interleave, also when runs with output spilled to files end together', async () => {
    // Past the 1 MiB a run keeps in memory, so its group is replayed from a file, in many writes.
    const lines = 80_000
    const command = `seq 1 ${lines} | sed "s/^/shard-$SHARD_INDEX line /"`
    const result = await runAction({ inputs: inputs({ run: command, shards: '4', 'max-parallel': '4' }) })
    expect(result.exitCode, result.stdout.slice(-3000)).toBe(0)
    const shardGroups = groups(result.stdout).filter((group) => /^shard \d of 4: /.test(group.title))
    expect(shardGroups).toHaveLength(4)
    for (const group of shardGroups) {
      const index = /^shard (\d)/.exec(group.title)?.[1]
      const printed = group.lines.filter((line) => /^shard-\d line /.test(line))
      expect(printed.length, group.title).toBe(lines)
      expect(printed.every((line, i) => line === `shard-${index} line ${i + 1}`), group.title).toBe(true)
    }
  })

  it('runs: a list of commands, all succeeding, each labelled and reported', async () => {
    const result = await runAction({ inputs: inputs({ runs: 'echo first-$((1+1))\necho second-$((2+2))' }) })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(result.outputs.status).toBe('SUCCESS')
    const byTitle = groups(result.stdout)
    expect(byTitle.find((g) => g.title.startsWith('run 1 of 2: '))?.lines).toContain('first-2')
    expect(byTitle.find((g) => g.title.startsWith('run 2 of 2: '))?.lines).toContain('second-4')
    expect(results(result).map((run) => run.state)).toEqual(['succeeded', 'succeeded'])
    expect(liveRuns()).toBe(0)
  })

  it('fail-fast: the first failure cancels the running run and starts no more', async () => {
    const runs = ['echo slow-started; sleep 60', 'exit 3', 'echo never-1', 'echo never-2'].join('\n')
    const result = await runAction({ inputs: inputs({ runs, 'max-parallel': '2', 'fail-fast': 'true' }) })
    expect(result.exitCode, result.stdout).not.toBe(0)
    expect(results(result).map((run) => run.state)).toEqual(['cancelled', 'failed', 'not-started', 'not-started'])
    // Only the first two ever reached the service, and neither is running.
    expect(runOperations().length).toBeLessThanOrEqual(2)
    // Every run that reached the service was cancelled there before the step ended (the service then
    // stops it on its own time).
    for (const op of runOperations().filter((op) => op.status !== 'FAILED' && op.status !== 'SUCCESS')) {
      expect(deletesOf(op.uuid), result.stdout).not.toHaveLength(0)
    }
    await eventually(() => liveRuns() === 0, 'no run live')
    const slow = results(result)[0]?.operation
    if (slow) expect(runOperations().find((op) => op.uuid === slow)?.status).toBe('CANCELLED')
    expect(result.stdout).not.toMatch(/never-[12]/)
    expect(result.stdout).toMatch(/::error::1 of 4 runs failed: run 2 of 4 .*fail-fast/)
    expect(result.summary).toMatch(/1 cancelled, 2 not started; stopped: fail-fast after run 2 of 4 failed/)
  })

  it('SIGINT cancels every live run; each still gets its group; post finds nothing to do', async () => {
    const action = startAction({ inputs: inputs({ run: 'echo "live $SHARD_INDEX"; sleep 60', shards: '3', 'max-parallel': '3' }) })
    await eventually(() => runOperations().filter((op) => op.status === 'EXECUTING').length === 3, 'three runs executing', 30_000)
    action.cancel()
    const result = await action.done
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::The job was cancelled \(SIGINT\)/)
    for (const op of runOperations()) expect(deletesOf(op.uuid), result.stdout).not.toHaveLength(0)
    await eventually(() => liveRuns() === 0, 'no run live')
    expect(runOperations().map((op) => op.status)).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED'])
    const titles = groups(result.stdout).map((group) => group.title)
    for (const index of [0, 1, 2]) expect(titles.some((title) => title.startsWith(`shard ${index} of 3: `))).toBe(true)
    emulator.reset()
    const post = await runPost(result, { inputs: inputs({}) })
    expect(post.exitCode).toBe(0)
    expect(emulator.requests.filter((r) => r.method === 'DELETE')).toHaveLength(0)
  })

  it('a fan-out main killed hard is cleaned up by post: every live run cancelled', async () => {
    const action = startAction({ inputs: inputs({ run: 'sleep 60', shards: '3', 'max-parallel': '3' }) })
    await eventually(() => runOperations().filter((op) => op.status === 'EXECUTING').length === 3, 'three runs executing', 30_000)
    // An operation can be executing before the main has read the spawn's answer and saved it to state;
    // the kill must come after that, or post cannot know the run (no service lookup finds it).
    await eventually(() => runOperations().every((op) => action.stateText().includes(op.uuid)), 'every run in the saved state')
    action.child.kill('SIGKILL')
    const main = await action.done
    expect(liveRuns()).toBe(3)
    const post = await runPost(main, { inputs: inputs({}) })
    expect(post.exitCode).toBe(0)
    expect(post.stdout.match(/Cancelled shard \d of 3 \(operation /g)).toHaveLength(3)
    await eventually(() => liveRuns() === 0, 'no run live')
    expect(runOperations().map((op) => op.status)).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED'])
  })
})
