/**
 * The child process of the `fanout` figures: drives the fan-out engine the way the action does (the
 * action's memory flag, the one log writer on stdout with stdout's backpressure, progress through
 * core.info) and, when done, prints `FANOUT_RESULT <json>` on stderr. Its stdout is the workflow log.
 *
 * Usage: node test/bench/fanout-harness.ts '<json HarnessConfig>'
 * - fake runs: each streams `bytes` of 64-character lines from a generator, paced to take `runMs`;
 * - contree runs (`contree` set): ContreeService.run against an emulator, `sleep` then `bytes` of output.
 */
import '../../src/memory.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { runMany, type RunOne } from '../../src/fanout/run-many.ts'
import type { FanoutTask } from '../../src/fanout/plan.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import { ContreeService } from '../../src/providers/contree/service.ts'
import type { OperationOutcome } from '../../src/providers/types.ts'

export interface HarnessConfig {
  runs: number
  parallel: number
  /** Output per run. */
  bytes: number
  /** Fake runs: the time each takes. ConTree runs: how long each sleeps before printing. */
  runMs: number
  contree?: { url: string; token: string }
}

export interface HarnessResult {
  /** From the first run starting to runMany's verdict, group writing included. */
  wallMs: number
  /** CPU time of this process over the same span: how much of the wall the engine's own work was. */
  cpuMs: number
  counts: { total: number; succeeded: number; failed: number; cancelled: number; notStarted: number }
  failure: string | null
}

/** The same line as the stream figures: printable ASCII, so bytes and characters are the same count. */
export const LINE = 'streaming benchmark line 0123456789 abcdefghijklmnopqrstuvwxyz.'
const CHUNK = Buffer.from(`${LINE}\n`.repeat(1024))

function fakeRun(config: HarnessConfig): RunOne<FanoutTask> {
  return async (task, sink, signal) => {
    const chunks = Math.ceil(config.bytes / CHUNK.byteLength)
    const started = performance.now()
    for (let i = 0; i < chunks; i++) {
      signal.throwIfAborted()
      const rest = config.bytes - i * CHUNK.byteLength
      sink.write('stdout', rest < CHUNK.byteLength ? CHUNK.subarray(0, rest) : CHUNK)
      await sink.ready?.()
      // Paced against the start, so a slow moment is caught up and each run takes runMs in all.
      const wait = started + ((i + 1) * config.runMs) / chunks - performance.now()
      if (wait > 0) await sleep(wait)
    }
    const outcome: OperationOutcome = {
      operationId: `fake-${task.index}`,
      status: 'SUCCESS',
      exitCode: 0,
      timedOut: false,
      error: null,
      resultImage: null,
      durationMs: performance.now() - started,
    }
    return outcome
  }
}

async function contreeRun(config: HarnessConfig, contree: { url: string; token: string }): Promise<RunOne<FanoutTask>> {
  const provider = new ContreeService({ apiUrl: contree.url, token: contree.token, userAgent: 'sandbox-action-fanout-bench' })
  const image = await provider.findImage({ tag: 'busybox:latest' })
  if (image === null) throw new Error('the emulator has no busybox:latest image')
  const seconds = (config.runMs / 1000).toFixed(3)
  return (task, sink, signal) =>
    provider.run(
      {
        image,
        command: `sleep ${seconds}; yes '${LINE}' | head -c ${config.bytes}`,
        shell: true,
        env: task.env,
        disposable: true,
        timeoutSeconds: 600,
        // As the action does (its output-limit input): the service's own default keeps far less.
        outputLimitBytes: 2 * config.bytes,
      },
      sink,
      { label: task.label, signal },
    )
}

const config = JSON.parse(process.argv[2] ?? '{}') as HarnessConfig
const tasks: FanoutTask[] = Array.from({ length: config.runs }, (_, index) => ({
  index,
  label: `run ${index + 1} of ${config.runs}`,
  command: 'bench',
  shell: true,
  env: {},
}))
const runOne = config.contree ? await contreeRun(config, config.contree) : fakeRun(config)
const started = performance.now()
const cpuBefore = process.cpuUsage()
const result = await runMany({ tasks, maxParallel: config.parallel, failFast: false, runOne, log: new RemoteLog() })
const cpu = process.cpuUsage(cpuBefore)
const report: HarnessResult = { wallMs: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000, counts: result.counts, failure: result.failure }
process.stderr.write(`FANOUT_RESULT ${JSON.stringify(report)}\n`)
