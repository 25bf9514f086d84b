/**
 * Figure 2: SIGINT → DELETE of the remote operation, as the emulator saw it arrive. The clock starts
 * just before the signal is sent and stops at the emulator's arrival timestamp of the first DELETE,
 * both epoch milliseconds on this machine.
 */
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { startBounded } from './bounded-action.ts'
import { baseInputs, withEmulator } from './emulators.ts'
import { describeError, emit, emitError, median, percentile, progress } from './report.ts'

interface CancelRun {
  latencyMs: number | undefined
  deletes: number
  exitCode: number | null
  signal: string | null
  error?: string
}

async function cancelOnce(emulator: ContreeEmulator): Promise<CancelRun> {
  emulator.reset()
  const run = startBounded({ inputs: baseInputs(emulator, { run: 'echo started; sleep 60', timeout: '120' }) }, 40_000)
  try {
    // The command line itself is in the group title; only the line printed by the command counts.
    await run.action.waitForStdout(/^started$/m, 20_000)
  } catch (error) {
    run.action.child.kill('SIGKILL')
    await run.done.catch(() => undefined)
    throw error
  }
  const t0 = Date.now()
  run.action.cancel()
  const result = await run.done
  const deletes = emulator.requests.filter((r) => r.method === 'DELETE' && r.at >= t0)
  const first = deletes.reduce<number | undefined>((min, r) => (min === undefined || r.at < min ? r.at : min), undefined)
  return {
    latencyMs: first === undefined ? undefined : first - t0,
    deletes: deletes.length,
    exitCode: result.exitCode,
    signal: result.signal,
    ...(first === undefined ? { error: `no DELETE after SIGINT; stdout tail: ${JSON.stringify(result.stdout.slice(-300))}` } : {}),
  }
}

export async function sigintLatency(runs = 20): Promise<void> {
  const figure = 'sigint.delete_latency'
  const goal = 'median <= 100 ms'
  try {
    await withEmulator(async (emulator) => {
      const results: CancelRun[] = []
      const started = Date.now()
      for (let i = 0; i < runs && Date.now() - started < 150_000; i++) {
        try {
          results.push(await cancelOnce(emulator))
        } catch (error) {
          results.push({ latencyMs: undefined, deletes: 0, exitCode: null, signal: null, error: describeError(error) })
        }
        const last = results.at(-1)
        progress(`sigint: run ${i + 1}/${runs}: ${last?.latencyMs ?? 'no DELETE'} ms, ${last?.deletes} DELETE(s), exit ${last?.exitCode ?? last?.signal}`)
      }
      const latencies = results.flatMap((r) => (r.latencyMs === undefined ? [] : [r.latencyMs]))
      const errors = [...new Set(results.flatMap((r) => (r.error === undefined ? [] : [r.error])))]
      const extra = {
        runs: results.length,
        runs_with_delete: latencies.length,
        deletes_per_run: results.map((r) => r.deletes),
        exit_codes: results.map((r) => r.exitCode ?? r.signal),
        latencies_ms: latencies,
        ...(errors.length > 0 ? { errors: errors.slice(0, 3) } : {}),
      }
      if (latencies.length === 0) {
        emitError(figure, 'ms', goal, new Error('no run produced a DELETE'), extra)
        return
      }
      emit({ figure, value: median(latencies), unit: 'ms', goal, p95_ms: percentile(latencies, 95), max_ms: Math.max(...latencies), ...extra })
    })
  } catch (error) {
    emitError(figure, 'ms', goal, error)
  }
}
