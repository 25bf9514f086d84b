/**
 * Runs the bundled action for a streaming figure the way the runner does (`node dist/index.js`,
 * INPUT_* variables, the runner's files, stdout to a pipe) and reads that pipe as raw bytes. The
 * test helper (helpers/run-action.ts) decodes and concatenates stdout into one string as it comes,
 * which at 100 MB would put the bench's own work next to the action on the same two cores; here a
 * chunk costs a search for the next marker and a comparison with the expected output
 * (printed-check.ts), and nothing is kept but the start of the output and its last bytes.
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
import { PrintedWindowCheck, type PrintedCheck } from './printed-check.ts'

export interface StreamedAction {
  exitCode: number | null
  signal: NodeJS.Signals | null
  /** The last bytes the action printed (for error messages). */
  stdoutTail: string
  stderr: string
  outputs: Record<string, string>
  memory: MemoryPeak
  /** The remote output inside the Run group's window against the expected output. */
  check: PrintedCheck
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
const TAIL_BYTES = 2000

/** Follows the Run group's markers through the stdout chunks as they arrive, checking the window. */
class WindowClock {
  phase: 'header' | 'body' | 'closing' | 'done' | 'lost' = 'header'
  check: PrintedWindowCheck | undefined
  firstByteAt: number | undefined
  endGroupAt: number | undefined
  readonly #expected: Buffer
  #head: Buffer[] = []
  #carry = Buffer.alloc(0)

  constructor(expected: Buffer) {
    this.#expected = expected
  }

  push(chunk: Buffer, now: number): void {
    if (this.phase === 'header') {
      this.#head.push(chunk)
      const head = Buffer.concat(this.#head)
      const match = HEADER.exec(head.toString('latin1'))
      if (match === null) {
        if (head.length > MAX_HEADER_BYTES) this.phase = 'lost'
        return
      }
      this.#head = []
      this.check = new PrintedWindowCheck(this.#expected, Buffer.from(`::${match[1]}::\n`))
      this.phase = 'body'
      const rest = head.subarray(match.index + match[0].length)
      if (rest.length > 0) this.#scan(rest, now)
      return
    }
    this.#scan(chunk, now)
  }

  /** `chunk` lies after the header. */
  #scan(chunk: Buffer, now: number): void {
    if (this.phase === 'body') {
      this.firstByteAt ??= now
      const after = (this.check as PrintedWindowCheck).push(chunk)
      if (after === -1) return
      this.phase = 'closing'
      if (after > 0) this.#scan(chunk.subarray(chunk.length - after), now)
      return
    }
    if (this.phase === 'closing' && this.#found(END_GROUP, chunk)) {
      this.endGroupAt = now
      this.phase = 'done'
    }
  }

  /** Whether `marker` is in this chunk or straddles it and the bytes before it. */
  #found(marker: Buffer, chunk: Buffer): boolean {
    const seam = Buffer.concat([this.#carry, chunk.subarray(0, marker.length - 1)])
    if (seam.indexOf(marker) !== -1 || chunk.indexOf(marker) !== -1) return true
    this.#carry = Buffer.concat([this.#carry, chunk]).subarray(-(marker.length - 1))
    return false
  }
}

/** The bundle to run: dist/index.js, or BENCH_BUNDLE (another build, e.g. for before/after figures). */
export function actionBundle(): string {
  return process.env.BENCH_BUNDLE ?? BUNDLE
}

/** Runs the action and checks the remote output it prints against `expected` as it comes. */
export async function runStreamingAction(inputs: Record<string, string>, expected: Buffer, deadlineMs: number): Promise<StreamedAction> {
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
    const clock = new WindowClock(expected)
    let lastBytes: Buffer = Buffer.alloc(0)
    let stderr = ''
    let cpuAtFirstByte: number | undefined
    let cpuAtEndGroup: number | undefined
    child.stdout.on('data', (chunk: Buffer) => {
      lastBytes = chunk.length >= TAIL_BYTES ? chunk : Buffer.concat([lastBytes, chunk]).subarray(-TAIL_BYTES)
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
    const stdoutTail = tail(lastBytes.subarray(-TAIL_BYTES).toString('utf8'))
    const check = clock.check?.finish() ?? { ok: false, printedChars: 0, expectedChars: expected.length, printedLines: 0, difference: 'the Run group never started' }
    const result: StreamedAction = { exitCode, signal, stdoutTail, stderr, outputs: parseFileCommands(readFileSync(files.output, 'utf8')), memory: peak, check }
    if (clock.firstByteAt !== undefined) result.firstByteAt = clock.firstByteAt
    if (clock.endGroupAt !== undefined) result.endGroupAt = clock.endGroupAt
    if (cpuAtFirstByte !== undefined && cpuAtEndGroup !== undefined) result.streamCpuMs = cpuAtEndGroup - cpuAtFirstByte
    if (exitCode !== 0) {
      throw new Error(`action exited ${exitCode ?? signal}${signal === 'SIGKILL' ? ` (killed after ${deadlineMs} ms)` : ''}; stdout tail: ${stdoutTail}; stderr: ${tail(stderr)}`)
    }
    if (clock.check?.closedAt === -1 || result.endGroupAt === undefined) {
      throw new Error(`the Run group's window was not found in the action's stdout (clock ${clock.phase}); stdout tail: ${stdoutTail}`)
    }
    return result
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}
