// The fan-out's summary table and outputs, checked as source and as GFM renders it (micromark with the
// GFM extensions, raw HTML passed through as GitHub does before sanitising, so any leak would show).
import { micromark } from 'micromark'
import { gfm, gfmHtml } from 'micromark-extension-gfm'
import { describe, expect, it } from 'vitest'
import { fanoutOutputs } from '../../src/fanout/outputs.ts'
import type { FanoutTask } from '../../src/fanout/plan.ts'
import { renderFanoutSummary, type FanoutSummaryInput } from '../../src/fanout/summary.ts'
import { classifyRun, countResults, notStarted, type StopReason, type TaskResult } from '../../src/fanout/task-result.ts'
import type { OperationOutcome } from '../../src/providers/types.ts'

function render(markdown: string): string {
  return micromark(markdown, { extensions: [gfm()], htmlExtensions: [gfmHtml()], allowDangerousHtml: true })
}

function cellsPerRow(html: string): number[] {
  return [...html.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => (m[1]?.match(/<t[dh][ >]/g) ?? []).length)
}

function task(index: number, command = `npm test -- --shard=${index}`, total = 4): FanoutTask {
  return { index, label: `run ${index + 1} of ${total}`, command, shell: true, env: {} }
}

function outcome(id: string, exitCode: number | null, extra: Partial<OperationOutcome> = {}): OperationOutcome {
  return { operationId: id, status: 'SUCCESS', exitCode, timedOut: false, error: null, resultImage: null, durationMs: 61_000, ...extra }
}

const judging = { expectsExitCode: true, timeoutSeconds: 600 }
const context = (stoppedBy?: StopReason) => ({ stoppedBy, judging, failOnExitCode: true, elapsedMs: 1200 })

function input(results: TaskResult[], stoppedBy: StopReason | null = null): FanoutSummaryInput {
  return { provider: 'contree', endpoint: 'https://api.example.com/sandboxes', results, counts: countResults(results), stoppedBy }
}

describe('fan-out results', () => {
  it('puts each way a run can end into plain words', () => {
    const stop: StopReason = { kind: 'fail-fast', failedLabel: 'run 1 of 4' }
    const rows = [
      classifyRun(task(0), { outcome: outcome('op-0', 0) }, context()),
      classifyRun(task(1), { outcome: outcome('op-1', null, { timedOut: true }) }, context()),
      classifyRun(task(2), { outcome: outcome('op-2', null, { status: 'CANCELLED', error: 'by a user' }) }, context()),
      classifyRun(task(3), { outcome: outcome('op-3', null, { status: 'CANCELLED' }) }, context(stop)),
      classifyRun(task(3), { error: new Error('socket hang up') }, context()),
      classifyRun(task(3), { error: new Error('aborted') }, context(stop)),
      notStarted(task(3), { kind: 'cancelled' }),
    ]
    expect(rows.map((r) => [r.state, r.failsStep, r.words])).toEqual([
      ['succeeded', false, 'exit code 0'],
      ['failed', true, 'timed out after 600 s'],
      // Cancelled on the service while the fan-out was not stopping: that is a failure of the run.
      ['failed', true, 'cancelled: by a user'],
      ['cancelled', false, 'cancelled (fail-fast after run 1 of 4 failed)'],
      ['failed', true, 'socket hang up'],
      ['cancelled', false, 'cancelled (fail-fast after run 1 of 4 failed)'],
      ['not-started', false, 'not started (the job was cancelled)'],
    ])
    expect(rows[4]).toMatchObject({ message: 'run 4 of 4: socket hang up', durationMs: 1200, operationId: null })
  })
})

describe('renderFanoutSummary', () => {
  it('shows one row per run: run, command, result, exit code, duration, sandbox/operation', () => {
    const results = [
      classifyRun(task(0), { outcome: outcome('op-0', 0) }, context()),
      classifyRun(task(1), { outcome: outcome('op-1', 2) }, context()),
      notStarted(task(2), { kind: 'fail-fast', failedLabel: 'run 2 of 4' }),
    ]
    const md = renderFanoutSummary({ ...input(results, { kind: 'fail-fast', failedLabel: 'run 2 of 4' }), title: 'Tests over 4 shards' })
    expect(md).toContain('## ✗ Tests over 4 shards\n')
    expect(md).toContain('3 runs: 1 succeeded, 1 failed, 0 cancelled, 1 not started; stopped: fail-fast after run 2 of 4 failed.')
    expect(md).toContain('| ✓ | run 1 of 4 | `npm test -- --shard=0` | exit code 0 | 0 | 1 m 01 s | `op-0` |')
    expect(md).toContain('| ✗ | run 2 of 4 | `npm test -- --shard=1` | failed with exit code 2 | 2 | 1 m 01 s | `op-1` |')
    expect(md).toContain('| – | run 3 of 4 | `npm test -- --shard=2` | not started (fail-fast after run 2 of 4 failed) | – | – | – |')
    expect(cellsPerRow(render(md))).toEqual([7, 7, 7, 7])
  })

  it('keeps a hostile command in its cell as text', () => {
    const hostile = 'echo "<script>alert(1)</script>" | tee `x` *b* [l](http://e) @user\nsecond line'
    const md = renderFanoutSummary(input([classifyRun(task(0, hostile), { outcome: outcome('op-0', 0) }, context())]))
    const html = render(md)
    expect(cellsPerRow(html)).toEqual([7, 7])
    expect(html).not.toContain('<script')
    expect(html).not.toContain('<a ')
    expect(html).not.toContain('second line')
  })

  it('stays within its byte budget, failed runs first when not every row fits', () => {
    const long = `make test ${'x'.repeat(5000)}`
    const results = Array.from({ length: 256 }, (_, i) =>
      classifyRun(task(i, long, 256), { outcome: outcome(`op-${i}`, i === 200 ? 1 : 0) }, context()),
    )
    const md = renderFanoutSummary(input(results), { maxBytes: 16 * 1024 })
    expect(Buffer.byteLength(md)).toBeLessThanOrEqual(16 * 1024)
    const rows = md.split('\n').filter((line) => line.startsWith('| ✓') || line.startsWith('| ✗'))
    expect(rows[0]).toMatch(/^\| ✗ \| run 201 of 256 \|/)
    // Long commands are shortened, so the table has room for many runs.
    expect(rows[0]?.length).toBeLessThan(400)
    expect(rows.length).toBeGreaterThan(40)
    expect(md).toMatch(/> ⚠️ \d+ more runs were omitted to keep the job summary under GitHub's 1 MiB limit/)
    expect(cellsPerRow(render(md)).every((n) => n === 7)).toBe(true)
  })

  it('keeps plan order when every row fits', () => {
    const results = [0, 1, 2].map((i) => classifyRun(task(i), { outcome: outcome(`op-${i}`, i === 2 ? 1 : 0) }, context()))
    const md = renderFanoutSummary(input(results))
    expect(md.indexOf('run 1 of 4')).toBeLessThan(md.indexOf('run 3 of 4'))
  })
})

describe('fanoutOutputs', () => {
  it('gives an overall status and every run as JSON', () => {
    const results = [classifyRun(task(0), { outcome: outcome('op-0', 0) }, context()), notStarted(task(1), { kind: 'cancelled' })]
    const outputs = fanoutOutputs(results, { kind: 'cancelled' })
    expect(outputs.status).toBe('CANCELLED')
    expect(JSON.parse(outputs.results)).toEqual([
      { index: 0, label: 'run 1 of 4', state: 'succeeded', 'exit-code': 0, operation: 'op-0', duration: '61.000' },
      { index: 1, label: 'run 2 of 4', state: 'not-started', 'exit-code': null, operation: null, duration: null },
    ])
    expect(fanoutOutputs([results[0] as TaskResult], null).status).toBe('SUCCESS')
    const failed = classifyRun(task(0), { outcome: outcome('op-0', 1) }, context())
    expect(fanoutOutputs([failed], { kind: 'cancelled' }).status).toBe('FAILED')
  })
})
