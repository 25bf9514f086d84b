/**
 * One remote operation in its own log group: the group opens when the operation starts, its remote
 * output streams inside, and a one-line status follows the group once it ends, also when it throws
 * (an open group would swallow the workflow commands that report the failure).
 */
import { errorMessage } from './errors.ts'
import { flushDebug } from './output/deferred-debug.ts'
import { warn } from './output/say.ts'
import { statusLine, type JudgeOptions } from './outcome.ts'
import { formatDuration } from './output/format.ts'
import type { LogGroup, LogGroups } from './providers/types.ts'
import type { OperationOutcome } from './providers/types.ts'

export async function inLogGroup(
  log: LogGroups,
  title: string,
  /** Short name used in the status line, e.g. "run". */
  what: string,
  judging: JudgeOptions,
  operate: (group: LogGroup) => Promise<OperationOutcome>,
): Promise<{ outcome: OperationOutcome; group: LogGroup }> {
  const group = log.open(title)
  let outcome: OperationOutcome
  try {
    outcome = await operate(group)
  } catch (error) {
    group.end(`✗ ${what}: ${errorMessage(error)}`)
    flushDebug()
    throw error
  }
  group.end(statusLine(outcome, what, formatDuration(outcome.durationMs), judging))
  flushDebug()
  // Shown in the group where they happened, and raised once the window is closed so they are seen.
  for (const notice of outcome.notices ?? []) warn(`${what}: ${notice}`)
  return { outcome, group }
}
