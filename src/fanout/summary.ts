/**
 * The job summary of a fan-out: one row per run (run, command, result, exit code, duration, sandbox or
 * operation), within the summary byte budget (the runner drops the whole summary past 1 MiB, see
 * output/summary.ts). When not every row fits, the runs that failed come first, so a cut table never
 * hides why the step failed.
 */
import { firstLine, formatDuration, statusSymbol } from '../output/format.ts'
import { codeSpan } from '../output/markdown-escape.ts'
import { codeCell, DEFAULT_SECTION_BYTES, fitRows, tableCell, truncationNote, utf8Bytes, type RenderOptions } from '../output/summary.ts'
import { displayCommand } from './plan.ts'
import { stopWords, type FanoutCounts, type StopReason, type TaskResult } from './task-result.ts'

/** Commands are shortened in the table: 256 rows of long commands would crowd out the results. */
const COMMAND_CHARS = 200

export interface FanoutSummaryInput {
  /** Heading, e.g. "Fan-out: npm test over 8 shards" (default "Fan-out"). */
  title?: string
  /** Provider name, e.g. "contree". */
  provider: string
  /** The service's base URL, shown verbatim. */
  endpoint?: string
  results: readonly TaskResult[]
  counts: FanoutCounts
  stoppedBy: StopReason | null
}

const STATE_SYMBOL: Record<TaskResult['state'], string> = {
  succeeded: statusSymbol('success'),
  failed: statusSymbol('failed'),
  cancelled: statusSymbol('cancelled'),
  'not-started': statusSymbol('skipped'),
}

function row(result: TaskResult): string {
  const exit = result.exitCode === null ? '–' : String(result.exitCode)
  const duration = result.durationMs === null ? '–' : formatDuration(result.durationMs)
  const command = codeCell(firstLine(displayCommand(result.task), COMMAND_CHARS))
  return `| ${STATE_SYMBOL[result.state]} | ${tableCell(result.task.label)} | ${command} | ${tableCell(result.words)} | ${exit} | ${duration} | ${codeCell(result.operationId)} |\n`
}

function headline(input: FanoutSummaryInput): string {
  const { counts, stoppedBy } = input
  const symbol = input.results.some((result) => result.failsStep)
    ? statusSymbol('failed')
    : stoppedBy?.kind === 'cancelled'
      ? statusSymbol('cancelled')
      : statusSymbol('success')
  const stopped = stoppedBy === null ? '' : `; stopped: ${tableCell(stopWords(stoppedBy))}`
  return (
    `## ${symbol} ${tableCell(input.title ?? 'Fan-out')}\n\n` +
    `Provider: ${tableCell(input.provider)}${input.endpoint ? ` at ${codeSpan(input.endpoint)}` : ''}\n\n` +
    `${counts.total} runs: ${counts.succeeded} succeeded, ${counts.failed} failed, ${counts.cancelled} cancelled, ${counts.notStarted} not started${stopped}.\n\n`
  )
}

/** Markdown for one fan-out: a headline with the counts and a table of every run that fits. */
export function renderFanoutSummary(input: FanoutSummaryInput, options: RenderOptions = {}): string {
  const maxBytes = options.maxBytes ?? DEFAULT_SECTION_BYTES
  const head =
    headline(input) +
    '| | Run | Command | Result | Exit code | Duration | Sandbox / operation |\n' +
    '|---|---|---|---|---|---|---|\n'
  const budget = Math.max(0, maxBytes - utf8Bytes(head) - utf8Bytes(truncationNote(`${input.results.length} more runs were`)))
  const rows = input.results.map(row)
  const fitsInOrder = rows.reduce((sum, text) => sum + utf8Bytes(text), 0) <= budget
  const ordered = fitsInOrder
    ? rows
    : [...rows.filter((_, i) => input.results[i]?.state === 'failed'), ...rows.filter((_, i) => input.results[i]?.state !== 'failed')]
  const { taken, omitted } = fitRows(ordered, budget)
  return head + taken.join('') + (omitted > 0 ? truncationNote(`${omitted} more runs were`) : '')
}
