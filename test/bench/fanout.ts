/**
 * Fan-out figures: 50 runs at max-parallel 10, 10 MB of output each. Ten lanes over fifty runs make
 * five waves, so the yardstick is one run's wall time × 5: the ratio says what writing 500 MB of
 * grouped output (and waiting for groups) costs on top of the runs themselves. Peak RSS says whether
 * the runs' buffered output stays out of memory.
 *
 * The engine runs in a child process (fanout-harness.ts) whose stdout, the workflow log, is read here
 * the way the runner reads it: completely, checking only that groups open and close in turn. Two
 * variants: fake runs that stream from a generator at a fixed pace (the engine alone), and
 * ContreeService runs against the emulator (the emulator lives in this process, not the measured one).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { watchMemory, type MemoryPeak } from './bounded-action.ts'
import { TOKEN, withEmulator } from './emulators.ts'
import type { HarnessConfig, HarnessResult } from './fanout-harness.ts'
import { describeError, emit, emitError, MB, progress, round } from './report.ts'

const HARNESS = fileURLToPath(new URL('./fanout-harness.ts', import.meta.url))
const RUNS = 50
const PARALLEL = 10
const BYTES = 10 * MB
const WAVES = RUNS / PARALLEL

interface HarnessRun {
  result: HarnessResult
  memory: MemoryPeak
  logBytes: number
  /** CPU of this process meanwhile: reading the log and, in the contree variant, the emulator. */
  benchCpuMs: number
  groups: number
  spillFilesLeft: number
}

/**
 * Follows `::group::` and `::endgroup::` at line starts in raw stdout bytes (no decoding: the bench must
 * cost little next to the process it measures) and notes any group opened inside another.
 */
class GroupCounter {
  groups = 0
  problem: string | undefined
  #open = false
  #carry = Buffer.alloc(0)
  static readonly OPEN = Buffer.from('\n::group::')
  static readonly CLOSE = Buffer.from('\n::endgroup::')

  push(chunk: Buffer): void {
    const text = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk
    const marks: [number, 'open' | 'close'][] = []
    for (const [needle, kind] of [[GroupCounter.OPEN, 'open'], [GroupCounter.CLOSE, 'close']] as const) {
      for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) marks.push([at, kind])
    }
    marks.sort((a, b) => a[0] - b[0])
    for (const [, kind] of marks) {
      if (kind === 'open') {
        if (this.#open) this.problem ??= `a group opened inside another (group ${this.groups + 1})`
        this.#open = true
      } else {
        if (!this.#open) this.problem ??= 'an endgroup outside any group'
        this.#open = false
        this.groups++
      }
    }
    // Keep enough to find a marker cut by the chunk boundary, and not so much that one is seen twice.
    this.#carry = Buffer.from(text.subarray(Math.max(0, text.length - (GroupCounter.CLOSE.length - 1))))
  }
}

async function runHarness(config: HarnessConfig, deadlineMs: number): Promise<HarnessRun> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bench-fanout-'))
  try {
    // Leading newline: the first group marker is found like every other one.
    const counter = new GroupCounter()
    counter.push(Buffer.from('\n'))
    let logBytes = 0
    let stderr = ''
    const child = spawn(process.execPath, [HARNESS, JSON.stringify(config)], {
      env: { ...process.env, RUNNER_TEMP: scratch },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const memory = watchMemory(child.pid ?? -1)
    const cpuBefore = process.cpuUsage()
    child.stdout.on('data', (chunk: Buffer) => {
      logBytes += chunk.length
      counter.push(chunk)
    })
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-20_000)
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs)
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    clearTimeout(timer)
    const peak = memory.stop()
    const cpu = process.cpuUsage(cpuBefore)
    const line = /FANOUT_RESULT (.*)/.exec(stderr)?.[1]
    if (code !== 0 || line === undefined) throw new Error(`the harness exited ${code} (deadline ${deadlineMs} ms); stderr: ${JSON.stringify(stderr.slice(-600))}`)
    if (counter.problem) throw new Error(`the log is not well grouped: ${counter.problem}`)
    // A run that printed less than it should would make every figure look better than it is.
    if (logBytes < config.runs * config.bytes) throw new Error(`the log holds ${logBytes} bytes, less than the ${config.runs * config.bytes} the runs print`)
    return {
      result: JSON.parse(line) as HarnessResult,
      memory: peak,
      logBytes,
      benchCpuMs: (cpu.user + cpu.system) / 1000,
      groups: counter.groups,
      spillFilesLeft: readdirSync(scratch).length,
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

async function variant(name: 'fake' | 'contree', base: Omit<HarnessConfig, 'runs' | 'parallel'>): Promise<void> {
  const prefix = `fanout.${name}`
  const ratioGoal = `<= 1.2 (wall of ${RUNS} runs at max-parallel ${PARALLEL} ÷ (one run's wall × ${WAVES}))`
  const rssGoal = '<= 200 MB'
  try {
    progress(`${prefix}: one run of ${base.bytes / MB} MB`)
    const one = await runHarness({ ...base, runs: 1, parallel: 1 }, 180_000)
    progress(`${prefix}: one run took ${Math.round(one.result.wallMs)} ms; now ${RUNS} runs at max-parallel ${PARALLEL}`)
    const many = await runHarness({ ...base, runs: RUNS, parallel: PARALLEL }, 600_000)
    const peakBytes = Math.max(many.memory.maxRssBytes, many.memory.hwmBytes)
    const common = {
      runs: RUNS,
      max_parallel: PARALLEL,
      bytes_per_run: base.bytes,
      succeeded: many.result.counts.succeeded,
      groups_in_log: many.groups,
      log_mb: round(many.logBytes / MB, 1),
      spill_files_left: many.spillFilesLeft,
      ...(many.result.failure ? { failure: many.result.failure } : {}),
    }
    emit({ figure: `${prefix}.one_run_ms`, value: Math.round(one.result.wallMs), unit: 'ms', goal: 'informational', paced_ms: base.runMs })
    emit({ figure: `${prefix}.wall_ms`, value: Math.round(many.result.wallMs), unit: 'ms', goal: 'informational', engine_cpu_ms: Math.round(many.result.cpuMs), bench_process_cpu_ms: Math.round(many.benchCpuMs), ...common })
    emit({
      figure: `${prefix}.wall_ratio`,
      value: round(many.result.wallMs / (one.result.wallMs * WAVES)),
      unit: 'ratio',
      goal: ratioGoal,
      one_run_ms: Math.round(one.result.wallMs),
      wall_ms: Math.round(many.result.wallMs),
      // On a shared machine the ratio says as much about the neighbours as about the engine.
      load_average_1m: round(os.loadavg()[0] ?? 0, 1),
      cpus: os.availableParallelism(),
    })
    emit({
      figure: `${prefix}.peak_rss_mb`,
      value: round(peakBytes / MB, 1),
      unit: 'MB',
      goal: rssGoal,
      max_vmrss_mb: round(many.memory.maxRssBytes / MB, 1),
      vmhwm_mb: round(many.memory.hwmBytes / MB, 1),
      one_run_peak_rss_mb: round(Math.max(one.memory.maxRssBytes, one.memory.hwmBytes) / MB, 1),
      samples: many.memory.samples,
      ...common,
    })
  } catch (error) {
    progress(`${prefix}: ${describeError(error)}`)
    emitError(`${prefix}.wall_ratio`, 'ratio', ratioGoal, error)
    emitError(`${prefix}.peak_rss_mb`, 'MB', rssGoal, error)
  }
}

export async function fanoutFigures(): Promise<void> {
  await variant('fake', { bytes: BYTES, runMs: 3000 })
  await withEmulator((emulator) => variant('contree', { bytes: BYTES, runMs: 2000, contree: { url: emulator.url, token: TOKEN } }))
}
