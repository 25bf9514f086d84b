/**
 * Figure 3: process start → first API request at the emulator (module loading, input parsing and
 * client set-up, everything before the action talks to the service), and what is being loaded.
 */
import { readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { REPO_ROOT } from '../helpers/run-action.ts'
import { runBounded } from './bounded-action.ts'
import { baseInputs, withEmulator } from './emulators.ts'
import { describeError, emit, emitError, median, progress } from './report.ts'

export async function startupLatency(runs = 10): Promise<void> {
  const figure = 'startup.first_request'
  const goal = 'median <= 250 ms'
  try {
    await withEmulator(async (emulator) => {
      const latencies: number[] = []
      const errors: string[] = []
      const started = Date.now()
      for (let i = 0; i < runs && Date.now() - started < 60_000; i++) {
        emulator.reset()
        const t0 = Date.now()
        try {
          const result = await runBounded({ inputs: baseInputs(emulator, { run: 'true', disposable: 'true' }) }, 30_000)
          if (result.exitCode !== 0) errors.push(`run ${i + 1} exited ${result.exitCode}`)
        } catch (error) {
          errors.push(describeError(error))
        }
        const first = emulator.requests.find((r) => r.at >= t0)
        if (first !== undefined) latencies.push(first.at - t0)
        progress(`startup: run ${i + 1}/${runs}: ${first === undefined ? 'no request' : `${first.at - t0} ms to ${first.method} ${first.path}`}`)
      }
      const extra = { runs: latencies.length, latencies_ms: latencies, ...(errors.length > 0 ? { errors: errors.slice(0, 3) } : {}) }
      if (latencies.length === 0) emitError(figure, 'ms', goal, new Error('no run reached the emulator'), extra)
      else emit({ figure, value: median(latencies), unit: 'ms', goal, min_ms: Math.min(...latencies), max_ms: Math.max(...latencies), ...extra })
    })
  } catch (error) {
    emitError(figure, 'ms', goal, error)
  }
}

export function bundleSize(): void {
  const figure = 'startup.bundle_size'
  const goal = 'informational (everything node may load from dist/)'
  try {
    const dist = path.join(REPO_ROOT, 'dist')
    const files = readdirSync(dist)
      .filter((name) => name.endsWith('.js') || name.endsWith('.mjs') || name.endsWith('.cjs'))
      .map((name) => ({ name, bytes: statSync(path.join(dist, name)).size }))
      .sort((a, b) => b.bytes - a.bytes)
    const total = files.reduce((sum, file) => sum + file.bytes, 0)
    emit({ figure, value: total, unit: 'bytes', goal, files: Object.fromEntries(files.map((f) => [f.name, f.bytes])) })
  } catch (error) {
    emitError(figure, 'bytes', goal, error)
  }
}
