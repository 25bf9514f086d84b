/**
 * Job summary (GITHUB_STEP_SUMMARY) for a run and for a build (platform notes §2.8).
 *
 * The runner drops the WHOLE step summary when the file exceeds 1 MiB, so every renderer works to a
 * byte budget and cuts tables and tails with a visible note, and writeSummary enforces the hard limit
 * against what the step has already written. Remote text is escaped (markdown-escape.ts).
 */
import { statSync } from 'node:fs'
import * as core from '@actions/core'
import { describeOutcome } from '../outcome.ts'
import { formatDuration, statusSymbol } from './format.ts'
import { codeSpan, escapeHtml, escapeMarkdownInline, truncateText } from './markdown-escape.ts'

/** The runner's limit for one step's summary file (FileCommandManager AttachmentSizeLimit). */
export const STEP_SUMMARY_LIMIT_BYTES = 1024 * 1024
/** Headroom for secret masking (`***` can be longer than a short secret) and rounding. */
const SAFETY_MARGIN_BYTES = 8 * 1024
/** Default budget for one rendered section; a step may write a build and a run summary. */
export const DEFAULT_SECTION_BYTES = 256 * 1024
/** Longest cell text (errors, instructions) and tail line kept in a summary. */
const MAX_CELL_CHARS = 1000
const MAX_TAIL_LINE_CHARS = 4096

export interface RunSummaryOperation {
  label: string
  operationId: string
  status: string
  exitCode: number | null
  durationMs: number
  resultImage: string | null
  timedOut: boolean
  error?: string
  /** A command ran (a run or a build step), so a missing exit code means it was killed; an import has none. */
  expectsExitCode?: boolean
  /** The command's time limit, for the words of a timeout. */
  timeoutSeconds?: number
}

export interface RunSummaryInput {
  title: string
  /** Provider name, e.g. "contree". */
  provider: string
  /** The service's base URL, shown verbatim. */
  endpoint?: string
  operations: readonly RunSummaryOperation[]
  /** Last lines of remote output (already sanitised for the log; escaped again here). */
  outputsTail?: readonly string[]
}

export type BuildStepOutcome = 'cached' | 'built' | 'failed' | 'skipped'

export interface BuildSummaryStep {
  index: number
  instruction: string
  outcome: BuildStepOutcome
  durationMs?: number
  resultImage?: string
}

export interface BuildSummaryInput {
  imageUuid: string
  digest: string
  tag?: string | null
  cacheHit: boolean
  steps: readonly BuildSummaryStep[]
}

export interface RenderOptions {
  /** Upper bound in UTF-8 bytes for the rendered section (default {@link DEFAULT_SECTION_BYTES}). */
  maxBytes?: number
}

/** Size of text in the summary file. */
export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8')
}

/** Untrusted text as a table cell: shortened, escaped, one line. */
export function tableCell(text: string): string {
  return escapeMarkdownInline(truncateText(text, MAX_CELL_CHARS))
}

/** An identifier as a code span in a cell, `–` when there is none. */
export function codeCell(text: string | null | undefined): string {
  return text ? codeSpan(truncateText(text, MAX_CELL_CHARS)) : '–'
}

/** The visible note that something was left out to stay under the summary limit. */
export function truncationNote(what: string): string {
  return `\n> ⚠️ ${what} omitted to keep the job summary under GitHub's 1 MiB limit; the full log is in the step output.\n`
}

/**
 * Appends table rows while they fit; returns the rows taken and how many did not fit. Rows are whole
 * lines, so a cut table is still a valid table.
 */
export function fitRows(rows: readonly string[], budget: number): { taken: string[]; omitted: number } {
  const taken: string[] = []
  let used = 0
  for (const row of rows) {
    const size = utf8Bytes(row)
    if (used + size > budget) break
    taken.push(row)
    used += size
  }
  return { taken, omitted: rows.length - taken.length }
}

function isSuccess(op: RunSummaryOperation): boolean {
  return op.status === 'SUCCESS' && !op.timedOut && (op.exitCode === 0 || (op.exitCode === null && !expectsExitCode(op)))
}

function expectsExitCode(op: RunSummaryOperation): boolean {
  return op.expectsExitCode ?? op.exitCode !== null
}

function overallSymbol(operations: readonly RunSummaryOperation[]): string {
  if (operations.some((op) => op.status === 'CANCELLED')) return statusSymbol('cancelled')
  return statusSymbol(operations.every(isSuccess) ? 'success' : 'failed')
}

function operationRow(op: RunSummaryOperation): string {
  const symbol = statusSymbol(isSuccess(op) ? 'success' : op.status === 'SUCCESS' ? 'failed' : op.status)
  // Plain words ("failed with exit code 3"), never the service's SUCCESS for a command that failed.
  const result = describeOutcome(
    { ...op, resultImage: op.resultImage, error: op.error ?? null, status: op.status as never },
    { expectsExitCode: expectsExitCode(op), ...(op.timeoutSeconds ? { timeoutSeconds: op.timeoutSeconds } : {}) },
  )
  const exit = op.exitCode === null ? '–' : String(op.exitCode)
  // A service failure's or cancellation's reason is in the result words already; keep the column for the rest.
  const details = op.error && op.status !== 'FAILED' && op.status !== 'CANCELLED' ? tableCell(op.error) : ''
  return `| ${symbol} | ${tableCell(op.label)} | ${tableCell(result)} | ${exit} | ${formatDuration(op.durationMs)} | ${codeCell(op.resultImage)} | ${codeCell(op.operationId)} | ${details} |\n`
}

/** Renders the remote output tail as a `<pre>` block, keeping the newest lines that fit. */
function renderTail(lines: readonly string[], budget: number): string {
  const open = '<details open><summary>Last lines of output</summary>\n\n<pre>\n'
  const close = '</pre>\n\n</details>\n'
  const note = (omitted: number): string => truncationNote(`${omitted} earlier output lines were`)
  // Room for the note is always reserved: simpler than knowing in advance whether lines will drop.
  let available = budget - utf8Bytes(open) - utf8Bytes(close) - utf8Bytes(note(lines.length))
  const kept: string[] = []
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = `${escapeHtml(truncateText(lines[i] ?? '', MAX_TAIL_LINE_CHARS))}\n`
    const size = utf8Bytes(line)
    if (size > available) break
    kept.push(line)
    available -= size
  }
  const omitted = lines.length - kept.length
  if (kept.length === 0) return omitted > 0 && utf8Bytes(note(omitted)) <= budget ? note(omitted) : ''
  kept.reverse()
  return `${omitted > 0 ? note(omitted) : ''}${open}${kept.join('')}${close}`
}

/** Markdown for one run: an operations table, errors, and optionally the last lines of output. */
export function renderRunSummary(input: RunSummaryInput, options: RenderOptions = {}): string {
  const maxBytes = options.maxBytes ?? DEFAULT_SECTION_BYTES
  const tail = input.outputsTail ?? []
  const head =
    `## ${overallSymbol(input.operations)} ${tableCell(input.title)}\n\n` +
    `Provider: ${tableCell(input.provider)}${input.endpoint ? ` at ${codeSpan(input.endpoint)}` : ''}\n\n` +
    '| | Operation | Result | Exit code | Duration | Result image | Operation ID | Error |\n' +
    '|---|---|---|---|---|---|---|---|\n'
  const reserveNote = utf8Bytes(truncationNote('999999 more operations were'))
  // The table gets first pick; the tail may use at most half of the section when both are large.
  const tableBudget = maxBytes - utf8Bytes(head) - reserveNote - (tail.length > 0 ? Math.floor(maxBytes / 2) : 0)
  const { taken, omitted } = fitRows(input.operations.map(operationRow), Math.max(0, tableBudget))
  let text = head + taken.join('')
  if (omitted > 0) text += truncationNote(`${omitted} more operations were`)
  if (tail.length > 0) text += `\n${renderTail(tail, maxBytes - utf8Bytes(text) - 1)}`
  return text
}

function buildStepRow(step: BuildSummaryStep): string {
  const duration = step.durationMs === undefined ? '–' : formatDuration(step.durationMs)
  return `| ${step.index} | ${tableCell(step.instruction)} | ${statusSymbol(step.outcome)} ${step.outcome} | ${duration} | ${codeCell(step.resultImage)} |\n`
}

/** Markdown for one image build: the resulting image and a table of its steps. */
export function renderBuildSummary(input: BuildSummaryInput, options: RenderOptions = {}): string {
  const maxBytes = options.maxBytes ?? DEFAULT_SECTION_BYTES
  const failed = input.steps.some((step) => step.outcome === 'failed')
  let text =
    `## ${statusSymbol(failed ? 'failed' : 'success')} Image build\n\n` +
    '| | |\n|---|---|\n' +
    `| Image | ${codeCell(input.imageUuid)} |\n` +
    `| Digest | ${codeCell(input.digest)} |\n` +
    (input.tag ? `| Tag | ${codeCell(input.tag)} |\n` : '') +
    `| Cache | ${input.cacheHit ? 'hit: the build was skipped' : 'miss'} |\n\n`
  if (input.steps.length === 0) {
    return text + (input.cacheHit ? '' : 'No build steps were recorded.\n')
  }
  const head = '| # | Instruction | Outcome | Duration | Result image |\n|---|---|---|---|---|\n'
  text += head
  const reserveNote = utf8Bytes(truncationNote('999999 more build steps were'))
  const { taken, omitted } = fitRows(input.steps.map(buildStepRow), Math.max(0, maxBytes - utf8Bytes(text) - reserveNote))
  text += taken.join('')
  if (omitted > 0) text += truncationNote(`${omitted} more build steps were`)
  return text
}

const FINAL_NOTE = truncationNote('The rest of this summary was')

/**
 * Cuts markdown to `budget` bytes at a line boundary, closes any `<pre>`/`<details>` our renderers
 * opened, and says so visibly. Returns null when not even the note fits.
 */
export function fitSummary(markdown: string, budget: number): string | null {
  if (utf8Bytes(markdown) <= budget) return markdown
  const closers = '</pre>\n\n</details>\n'
  const room = budget - utf8Bytes(FINAL_NOTE) - utf8Bytes(closers)
  if (room < 0) return null
  const encoded = Buffer.from(markdown, 'utf8')
  let end = room
  while (end > 0 && ((encoded[end] ?? 0) & 0xc0) === 0x80) end--
  let text = encoded.toString('utf8', 0, end)
  const lastBreak = text.lastIndexOf('\n')
  text = lastBreak >= 0 ? text.slice(0, lastBreak + 1) : ''
  if (count(text, '<pre') > count(text, '</pre>')) text += '</pre>\n'
  if (count(text, '<details') > count(text, '</details>')) text += '\n</details>\n'
  return text + FINAL_NOTE
}

function count(text: string, needle: string): number {
  let n = 0
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length)) n++
  return n
}

/**
 * Appends `markdown` to the step summary through core.summary, only when GITHUB_STEP_SUMMARY is set
 * (core.summary.write throws otherwise, e.g. in local runs). The text is cut so that the summary file,
 * including what this step already wrote and anything pending in core.summary's buffer, stays under
 * the 1 MiB limit. Returns whether anything was written. File errors propagate: the caller turns them
 * into a warning, since a summary never decides the step's result.
 */
export async function writeSummary(markdown: string): Promise<boolean> {
  const path = process.env['GITHUB_STEP_SUMMARY']
  if (!path) return false
  let existing = 0
  try {
    existing = statSync(path).size
  } catch {
    existing = 0
  }
  const pending = utf8Bytes(core.summary.stringify())
  const budget = STEP_SUMMARY_LIMIT_BYTES - SAFETY_MARGIN_BYTES - existing - pending
  const text = fitSummary(markdown.endsWith('\n') ? markdown : `${markdown}\n`, budget)
  if (text === null) return false
  await core.summary.addRaw(text).write()
  return true
}
