/**
 * What an operation's outcome means for the step. A SUCCESS status only says the service did its
 * part: the command can still have failed (non-zero exit, timeout), and that is a different message.
 * The words here are the ones users read (status lines, summaries); the service's own status stays
 * in the outputs.
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

/**
 * The result in a few plain words: "exit code 0", "failed with exit code 3", "timed out after 5 s",
 * "failed on the service: no capacity", "cancelled". Never "SUCCESS" for a command that failed.
 */
export function describeOutcome(outcome: OperationOutcome, options: JudgeOptions = {}): string {
  // The service may report a timeout as SUCCESS (with timed_out) or as FAILED: either way it timed out.
  if (outcome.timedOut && outcome.status !== 'CANCELLED') {
    return options.timeoutSeconds ? `timed out after ${options.timeoutSeconds} s` : 'timed out'
  }
  switch (outcome.status) {
    case 'SUCCESS':
      if (outcome.exitCode === null) return options.expectsExitCode ? 'killed by a signal' : 'done'
      return outcome.exitCode === 0 ? 'exit code 0' : `failed with exit code ${outcome.exitCode}`
    case 'FAILED':
      return `failed on the service: ${outcome.error ?? 'no reason given'}`
    case 'CANCELLED':
      return outcome.error ? `cancelled: ${outcome.error}` : 'cancelled'
    default:
      return `ended as ${outcome.status}`
  }
}

/** The one-line status printed after an operation's log group. */
export function statusLine(outcome: OperationOutcome, what: string, durationText: string, options: JudgeOptions = {}): string {
  const mark = judge(outcome, what, options).ok ? '✓' : '✗'
  return `${mark} ${what}: ${describeOutcome(outcome, options)} in ${durationText} (operation ${outcome.operationId})`
}
