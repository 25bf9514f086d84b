/**
 * What an operation's outcome means for the step. A SUCCESS status only says the service did its
 * part: the command can still have failed (non-zero exit, timeout), and that is a different message.
 */
import type { OperationOutcome } from './providers/types.ts'

export type Verdict =
  | { ok: true }
  | { ok: false; kind: 'command'; message: string }
  | { ok: false; kind: 'service'; message: string }

export interface JudgeOptions {
  timeoutSeconds?: number
  /** A command ran, so a missing exit code means it was killed (an import has none to report). */
  expectsExitCode?: boolean
}

export function judge(outcome: OperationOutcome, what: string, options: JudgeOptions = {}): Verdict {
  const ref = `operation ${outcome.operationId}`
  switch (outcome.status) {
    case 'SUCCESS':
      if (outcome.timedOut) {
        const limit = options.timeoutSeconds ? ` after ${options.timeoutSeconds} s` : ''
        return { ok: false, kind: 'command', message: `${what} timed out${limit} and was killed (${ref})` }
      }
      if (outcome.exitCode === null) {
        return options.expectsExitCode
          ? { ok: false, kind: 'command', message: `${what} was killed by a signal before it could exit (${ref})` }
          : { ok: true }
      }
      if (outcome.exitCode !== 0) {
        return {
          ok: false,
          kind: 'command',
          message: `${what} exited with code ${outcome.exitCode}; the sandbox itself ran fine, the command failed (${ref})`,
        }
      }
      return { ok: true }
    case 'FAILED':
      return { ok: false, kind: 'service', message: `The sandbox service reported ${what} as FAILED: ${outcome.error ?? 'no reason given'} (${ref})` }
    case 'CANCELLED':
      return { ok: false, kind: 'service', message: `${what} was cancelled${outcome.error ? `: ${outcome.error}` : ''} (${ref})` }
    default:
      return { ok: false, kind: 'service', message: `${what} ended in unexpected status ${outcome.status} (${ref})` }
  }
}

/** The one-line status printed after an operation's log group. */
export function statusLine(outcome: OperationOutcome, what: string, durationText: string, options: JudgeOptions = {}): string {
  const verdict = judge(outcome, what, options)
  const mark = verdict.ok ? '✓' : '✗'
  const exit = outcome.exitCode === null ? '' : `, exit code ${outcome.exitCode}`
  const timeout = outcome.timedOut ? ', timed out' : ''
  return `${mark} ${what}: ${outcome.status}${exit}${timeout} in ${durationText} (operation ${outcome.operationId})`
}
