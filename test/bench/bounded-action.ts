/**
 * The e2e runner helper with the limits a benchmark needs: every run has a deadline after which the
 * action is killed (a hung action must cost a figure, not the whole bench), and a failed run is
 * summarised in one line that says what the action printed last.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startAction, type ActionOptions, type ActionResult, type RunningAction } from '../helpers/run-action.ts'

export interface BoundedRun {
  action: RunningAction
  /** Resolves with the result, or rejects when the deadline passed (the process is killed first). */
  done: Promise<ActionResult>
}

export function startBounded(options: ActionOptions, deadlineMs: number): BoundedRun {
  // The helper would leave its temp runner dir and workspace behind; a bench makes hundreds of runs.
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bench-run-'))
  for (const dir of ['runner', 'workspace']) mkdirSync(path.join(scratch, dir))
  const action = startAction({
    runnerDir: path.join(scratch, 'runner'),
    workspace: path.join(scratch, 'workspace'),
    ...options,
  })
  // Removed only once the process is gone: the helper reads the runner files when it closes.
  action.done.then(
    () => rmSync(scratch, { recursive: true, force: true }),
    () => rmSync(scratch, { recursive: true, force: true }),
  )
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      action.child.kill('SIGKILL')
      reject(new Error(`action still running after ${deadlineMs} ms (killed); stdout tail: ${tail(action.stdout())}`))
    }, deadlineMs)
  })
  const done = Promise.race([action.done, deadline]).finally(() => clearTimeout(timer))
  // The race's loser must not surface as an unhandled rejection.
  done.catch(() => undefined)
  return { action, done }
}

export async function runBounded(options: ActionOptions, deadlineMs: number): Promise<ActionResult> {
  return startBounded(options, deadlineMs).done
}

/** Throws unless the action succeeded, naming the exit code and its last words. */
export function requireSuccess(result: ActionResult, what: string): void {
  if (result.exitCode === 0) return
  // Only the end: a streaming run's stdout can be hundreds of MB, and the error annotation comes last.
  const errors = result.stdout.slice(-65_536).split('\n').filter((line) => line.startsWith('::error')).slice(0, 3)
  throw new Error(
    `${what}: action exited ${result.exitCode ?? result.signal}; ${errors.length > 0 ? errors.join(' | ') : `stdout tail: ${tail(result.stdout)}`}${result.stderr.trim() !== '' ? `; stderr: ${tail(result.stderr)}` : ''}`,
  )
}

export function tail(text: string, chars = 600): string {
  return JSON.stringify(text.slice(-chars))
}

export interface MemoryPeak {
  /** Largest VmRSS seen by polling, bytes. */
  maxRssBytes: number
  /** Last VmHWM read (the kernel's own peak RSS), bytes; 0 when never read. */
  hwmBytes: number
  samples: number
}

/**
 * Polls /proc/<pid>/status until the process is gone (or `stop()` is called). VmHWM covers peaks
 * between samples; VmRSS is kept too because HWM is not reset by anything we do.
 */
export function watchMemory(pid: number, intervalMs = 20, maxDurationMs = 600_000): { stop(): MemoryPeak } {
  const peak: MemoryPeak = { maxRssBytes: 0, hwmBytes: 0, samples: 0 }
  const started = Date.now()
  const sample = (): void => {
    let status: string
    try {
      status = readFileSync(`/proc/${pid}/status`, 'utf8')
    } catch {
      clearInterval(timer)
      return
    }
    const rss = kib(status, 'VmRSS')
    const hwm = kib(status, 'VmHWM')
    // A zombie has no VmRSS line; keep the last real reading.
    if (rss === undefined) return
    peak.samples++
    peak.maxRssBytes = Math.max(peak.maxRssBytes, rss)
    if (hwm !== undefined) peak.hwmBytes = Math.max(peak.hwmBytes, hwm)
    if (Date.now() - started > maxDurationMs) clearInterval(timer)
  }
  const timer = setInterval(sample, intervalMs)
  sample()
  return {
    stop() {
      clearInterval(timer)
      return { ...peak }
    },
  }
}

function kib(status: string, field: string): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
  return match ? Number(match[1]) * 1024 : undefined
}

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat (clock ticks of
 * 10 ms); undefined once the process is gone. On a shared machine, CPU per MB says more about the
 * code than wall time does.
 */
export function cpuTimeMs(pid: number): number | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  return Number.isFinite(ticks) ? ticks * 10 : undefined
}
