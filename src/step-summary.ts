/**
 * The job summary of a step, for every mode: the sections the work wrote (builds, previews, a
 * fan-out's table), then one table of the remote operations. A summary that cannot be written is a
 * warning, never the step's failure.
 */
import * as core from '@actions/core'
import { errorMessage } from './errors.ts'
import { renderRunSummary, writeSummary } from './output/summary.ts'
import type { Provider, StepReport } from './providers/types.ts'

/** `timeoutSeconds`: the run's timeout, shown for operations that ran the command. */
export async function tryWriteStepSummary(provider: Provider, report: StepReport, extraSections: string[] = [], timeoutSeconds?: number): Promise<void> {
  try {
    const parts: string[] = [...report.sections, ...extraSections]
    if (report.operations.length) {
      parts.push(
        renderRunSummary({
          title: 'Remote sandbox operations',
          provider: provider.name,
          endpoint: provider.endpoint,
          operations: report.operations.map(({ label, outcome, expectsExitCode }) => ({
            label,
            operationId: outcome.operationId,
            status: outcome.status,
            exitCode: outcome.exitCode,
            durationMs: outcome.durationMs,
            resultImage: outcome.resultImage,
            timedOut: outcome.timedOut,
            expectsExitCode,
            ...(expectsExitCode && timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
            ...(outcome.error ? { error: outcome.error } : {}),
          })),
        }),
      )
    }
    if (parts.length) await writeSummary(parts.join('\n'))
  } catch (error) {
    core.warning(`Could not write the job summary: ${errorMessage(error)}`)
  }
}
