/**
 * Runs the bundled action for a streaming figure the way the runner does (`node dist/index.js`,
 * INPUT_* variables, the runner's files, stdout to a pipe) and reads that pipe as raw bytes. The
 * test helper (helpers/run-action.ts) decodes and concatenates stdout into one string as it comes,
 * which at 100 MB would put the bench's own work next to the action on the same two cores; here a
 * chunk costs one append and a search for the next marker.
 *
 * The stream is timed from the first byte of remote output (the byte after the Run group's
 * `::stop-commands::<token>` line) to the `::endgroup::` that follows the window's closing line.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { BUNDLE, parseFileCommands } from '../helpers/run-action.ts'
import { cpuTimeMs, tail, watchMemory, type MemoryPeak } from './bounded-action.ts'

export interface StreamedAction {
  exitCode: number | null
  signal: NodeJS.Signals | null
  /** Everything the action printed. */
  stdout: Buffer
  stderr: string
  outputs: Record<string, string>
  memory: MemoryPeak
  /** Byte range of remote output in `stdout`: after the stop-commands line, before the resume line. */
  window?: { start: number; end: number }
  /** performance.now() of the first remote byte and of the `::endgroup::` after the window. */
  firstByteAt?: number
  endGroupAt?: number
  /** CPU time the action used between those two moments (10 ms resolution). */
  streamCpuMs?: number
}

const HEADER = /::group::Run: [^\n]*\n::stop-commands::([^\n]+)\n/
const END_GROUP = Buffer.from('::endgroup::\n')
/** The header comes first; stop looking for it after this much output. */
const MAX_HEADER_BYTES = 1 << 20

/** Follows the Run group's markers through the stdout chunks as they arrive. */
class WindowClock {
  phase: 'header' | 'body' | 'closing' | 'done' | 'lost' = 'header'
  windowStart = -1
  windowEnd = -1
  firstByteAt: number | undefined
  endGroupAt: number | undefined
  #received = 0
  #head: Buffer[] = []
  #closeMarker = Buffer.alloc(0)
  #carry = Buffer.alloc(0)

  push(chunk: Buffer, now: number): void {
    const offset = this.#received
    this.#received += chunk.length
    if (this.phase === 'header') {
      this.#head.push(chunk)
      const head = Buffer.concat(this.#head)
      const match = HEADER.exec(head.toString('latin1'))
      if (match === null) {
        if (head.length > MAX_HEADER_BYTES) this.phase = 'lost'
        return
      }
      this.#head = []
      this.#closeMarker = Buffer.from(`::${match[1]}::\n`)
      this.windowStart = offset - (head.length - chunk.length) + match.index + match[0].length
      this.phase = 'body'
      this.#carry = Buffer.alloc(0)
      const rest = chunk.subarray(Math.max(0, this.windowStart - offset))
      if (rest.length > 0) this.#scan(rest, this.windowStart, now)
      return
    }
    this.#scan(chunk, offset, now)
  }

  /** `chunk` starts at absolute offset `offset` and lies after the header. */
  #scan(chunk: Buffer, offset: number, now: number): void {
    if (this.phase === 'body') {
      this.firstByteAt ??= now
      const found = this.#find(this.#closeMarker, chunk, offset)
      if (found === -1) return
      this.windowEnd = found
      this.phase = 'closing'
      const after = found + this.#closeMarker.length - offset
      if (after < chunk.length) this.#scan(chunk.subarray(after), offset + after, now)
      return
    }
    if (this.phase === 'closing' && this.#find(END_GROUP, chunk, offset) !== -1) {
      this.endGroupAt = now
      this.phase = 'done'
    }
  }

  /**
   * The absolute offset of `marker` in the output so far, looking only at this chunk and the few
   * bytes before it that a marker could straddle (no copy of the chunk: 100 MB pass through here).
   */
  #find(marker: Buffer, chunk: Buffer, offset: number): number {
    const carry = this.#carry
    if (carry.length > 0) {
      const seam = Buffer.concat([carry, chunk.subarray(0, marker.length - 1)])
      const at = seam.indexOf(marker)
      if (at !== -1) {
        this.#carry = Buffer.alloc(0)
        return offset - carry.length + at
      }
    }
    const at = chunk.indexOf(marker)
    if (at !== -1) {
      this.#carry = Buffer.alloc(0)
      return offset + at
    }
    const keep = marker.length - 1
    this.#carry = chunk.length >= keep ? Buffer.from(chunk.subarray(chunk.length - keep)) : Buffer.concat([carry, chunk]).subarray(-keep)
    return -1
  }
}

/** The bundle to run: dist/index.js, or BENCH_BUNDLE (another build, e.g. for before/after figures). */
export function actionBundle(): string {
  return process.env.BENCH_BUNDLE ?? BUNDLE
}

export async function runStreamingAction(inputs: Record<string, string>, deadlineMs: number): Promise<StreamedAction> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bench-stream-'))
  try {
    const files = { output: path.join(scratch, 'output'), state: path.join(scratch, 'state'), summary: path.join(scratch, 'summary') }
    for (const file of Object.values(files)) writeFileSync(file, '')
    mkdirSync(path.join(scratch, 'temp'))
    mkdirSync(path.join(scratch, 'workspace'))
    const env: Record<string, string> = {}
    for (const key of ['PATH', 'HOME', 'LANG', 'TMPDIR']) {
      const value = process.env[key]
      if (value !== undefined) env[key] = value
    }
    // For profiling the action alone (e.g. `--cpu-prof --cpu-prof-dir=…`): the bench's own processes keep theirs.
    if (process.env.BENCH_ACTION_NODE_OPTIONS) env.NODE_OPTIONS = process.env.BENCH_ACTION_NODE_OPTIONS
    Object.assign(env, {
      GITHUB_ACTIONS: 'true',
      GITHUB_WORKSPACE: path.join(scratch, 'workspace'),
      GITHUB_OUTPUT: files.output,
      GITHUB_STATE: files.state,
      GITHUB_STEP_SUMMARY: files.summary,
      RUNNER_TEMP: path.join(scratch, 'temp'),
    })
    for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value

    const child = spawn(process.execPath, [actionBundle()], { cwd: env.GITHUB_WORKSPACE, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const memory = watchMemory(child.pid ?? -1)
    const clock = new WindowClock()
    const chunks: Buffer[] = []
    let stderr = ''
    let cpuAtFirstByte: number | undefined
    let cpuAtEndGroup: number | undefined
    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      const started = clock.firstByteAt !== undefined
      const ended = clock.endGroupAt !== undefined
      clock.push(chunk, performance.now())
      if (!started && clock.firstByteAt !== undefined) cpuAtFirstByte = cpuTimeMs(child.pid ?? -1)
      if (!ended && clock.endGroupAt !== undefined) cpuAtEndGroup = cpuTimeMs(child.pid ?? -1)
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs)
    const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code, sig) => resolve([code, sig]))
    }).finally(() => clearTimeout(timer))
    const peak = memory.stop()
    const stdout = Buffer.concat(chunks)
    const result: StreamedAction = { exitCode, signal, stdout, stderr, outputs: parseFileCommands(readFileSync(files.output, 'utf8')), memory: peak }
    if (clock.windowEnd >= 0) result.window = { start: clock.windowStart, end: clock.windowEnd }
    if (clock.firstByteAt !== undefined) result.firstByteAt = clock.firstByteAt
    if (clock.endGroupAt !== undefined) result.endGroupAt = clock.endGroupAt
    if (cpuAtFirstByte !== undefined && cpuAtEndGroup !== undefined) result.streamCpuMs = cpuAtEndGroup - cpuAtFirstByte
    if (exitCode !== 0) {
      throw new Error(`action exited ${exitCode ?? signal}${signal === 'SIGKILL' ? ` (killed after ${deadlineMs} ms)` : ''}; stdout tail: ${tail(stdout.subarray(-2000).toString('utf8'))}; stderr: ${tail(stderr)}`)
    }
    if (result.window === undefined || result.endGroupAt === undefined) {
      throw new Error(`the Run group's window was not found in the action's stdout (clock ${clock.phase}); stdout tail: ${tail(stdout.subarray(-2000).toString('utf8'))}`)
    }
    return result
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}
