/**
 * The step outputs of a fan-out, for later steps: an overall status in the words the single-run
 * `status` output uses, and every run's result as JSON (plan order). Commands are left out: later
 * steps know them, and an output is capped at 1 MB.
 */
import type { StopReason, TaskResult } from './task-result.ts'

export interface FanoutRunOutput {
  index: number
  label: string
  state: TaskResult['state']
  'exit-code': number | null
  /** The sandbox or operation that ran it. */
  operation: string | null
  /** Seconds, three decimals, like the single-run `duration` output. */
  duration: string | null
}

/** Output name → value; main sets each with core.setOutput. */
export function fanoutOutputs(results: readonly TaskResult[], stoppedBy: StopReason | null): { status: string; results: string } {
  const status = results.some((result) => result.failsStep) ? 'FAILED' : stoppedBy?.kind === 'cancelled' ? 'CANCELLED' : 'SUCCESS'
  const runs: FanoutRunOutput[] = results.map((result) => ({
    index: result.task.index,
    label: result.task.label,
    state: result.state,
    'exit-code': result.exitCode,
    operation: result.operationId,
    duration: result.durationMs === null ? null : (result.durationMs / 1000).toFixed(3),
  }))
  return { status, results: JSON.stringify(runs) }
}
