/**
 * The body of a preview's sticky PR comment: what people read to know whether the preview exists,
 * what it runs and how to reach it (platform notes, pr-previews.md "The sticky comment"). One
 * rendering while the preview lives (deploying, ready, failed) and one after teardown ("removed"),
 * so the comment never points at a preview that is gone.
 *
 * Pure: the caller passes the time and the run. Values from the PR or a service go through
 * comment-markdown.ts; links are built only from the server URL and validated parts.
 */
import { formatDuration } from '../output/format.ts'
import { autolink, codeBlock, codeCell, commentText, httpUrl, markdownLink } from './comment-markdown.ts'
import type { RepositoryRef, WorkflowRunRef } from './refs.ts'
import { stickyMarker } from './sticky-comment.ts'

export type PreviewStatus = 'deploying' | 'ready' | 'failed'

export interface PreviewPort {
  port: number
  /** Where the service exposes it; shown and linked only when it is an http(s) URL. */
  url?: string
}

interface PreviewCommentBase {
  /** The preview's name (the marker); see stickyMarker for what is allowed. */
  name: string
  /** GITHUB_SERVER_URL, e.g. https://github.com or a GHES host. */
  serverUrl: string
  repository: RepositoryRef
  run: WorkflowRunRef
  /** When this rendering is written: shown as the time of the update. */
  at: Date
}

export interface PreviewCommentInput extends PreviewCommentBase {
  status: PreviewStatus
  /** The commit the preview was built from (the PR head SHA). */
  commitSha: string
  /** The PR's head branch (untrusted). */
  branch?: string
  /** A line under the heading, e.g. the PR title (untrusted). */
  title?: string
  /** The service's name, e.g. "ConTree" or "Together Sandbox". */
  service?: string
  imageId?: string
  snapshotId?: string
  sandboxId?: string
  /** When the service will remove the preview on its own (TTL). */
  expiresAt?: Date
  ports?: readonly PreviewPort[]
  /** The command that reaches the preview, e.g. `together-sandbox exec … -- sh` (shown to copy). */
  reach?: string
  /** Why it failed (untrusted service text). */
  error?: string
}

export interface RemovedPreviewInput extends PreviewCommentBase {
  /** What teardown removed, e.g. [{ what: 'sandbox', id: 'sbx-1' }]; empty when nothing was left. */
  removed: ReadonlyArray<{ what: string; id: string }>
  /** The last commit the preview ran. */
  commitSha?: string
  /** Why, e.g. "pull request closed" (untrusted when it quotes anything). */
  reason?: string
}

const STATUS_SYMBOL: Record<PreviewStatus | 'removed', string> = {
  deploying: '⏳',
  ready: '✅',
  failed: '❌',
  removed: '🗑️',
}
/** Beyond this many ports the list is cut with a count, keeping the comment short. */
const MAX_PORTS = 20
const SHORT_SHA = 7

/** A GitHub UTC timestamp without milliseconds: 2026-11-22T12:00:00Z. */
export function isoSeconds(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

function relative(target: Date, now: Date): string {
  const ms = target.getTime() - now.getTime()
  return ms >= 0 ? `in ${formatDuration(ms)}` : `expired ${formatDuration(-ms)} ago`
}

class Links {
  private readonly repoBase: string

  constructor(serverUrl: string, repository: RepositoryRef) {
    const server = httpUrl(serverUrl)
    if (server === undefined) throw new Error(`server URL '${serverUrl}' is not an http(s) URL`)
    const path = `${encodeURIComponent(repository.owner)}/${encodeURIComponent(repository.repo)}`
    this.repoBase = `${server.href.replace(/\/+$/, '')}/${path}`
  }

  /** The commit, as its short SHA linked; a value that is not a SHA is shown, not linked. */
  commit(sha: string): string {
    if (!/^[0-9a-f]{7,64}$/i.test(sha)) return codeCell(sha)
    return markdownLink(`\`${sha.slice(0, SHORT_SHA).toLowerCase()}\``, new URL(`${this.repoBase}/commit/${sha.toLowerCase()}`))
  }

  run(run: WorkflowRunRef): string {
    const attempt = run.attempt ?? 1
    if (!Number.isSafeInteger(run.id) || run.id <= 0 || !Number.isSafeInteger(attempt) || attempt < 1) {
      throw new Error(`workflow run id ${run.id} / attempt ${attempt} must be positive integers`)
    }
    // The attempt's own page exists from the second attempt on; the run page shows the latest.
    const path = attempt > 1 ? `actions/runs/${run.id}/attempts/${attempt}` : `actions/runs/${run.id}`
    const label = attempt > 1 ? `run ${run.id}, attempt ${attempt}` : `run ${run.id}`
    return markdownLink(label, new URL(`${this.repoBase}/${path}`))
  }
}

function row(label: string, value: string | undefined): string {
  return value === undefined ? '' : `| ${label} | ${value} |\n`
}

function portsCell(ports: readonly PreviewPort[]): string | undefined {
  if (ports.length === 0) return undefined
  const shown = ports.slice(0, MAX_PORTS).map((p) => {
    const port = Number.isInteger(p.port) && p.port > 0 && p.port < 65_536 ? `\`${p.port}\`` : codeCell(String(p.port))
    if (p.url === undefined) return port
    const url = httpUrl(p.url)
    return `${port} → ${url ? autolink(url) : codeCell(p.url)}`
  })
  const more = ports.length > MAX_PORTS ? `, and ${ports.length - MAX_PORTS} more` : ''
  return shown.join(', ') + more
}

function optionalCode(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : codeCell(value)
}

/** Markdown for a living preview: marker, heading with status, table, and the command to reach it. */
export function renderPreviewComment(input: PreviewCommentInput): string {
  const links = new Links(input.serverUrl, input.repository)
  const status = `${STATUS_SYMBOL[input.status]} ${input.status}`
  let text = `${stickyMarker(input.name)}\n### ${STATUS_SYMBOL[input.status]} Preview \`${input.name}\`: ${input.status}\n\n`
  if (input.title) text += `${commentText(input.title, 300)}\n\n`
  text +=
    '| | |\n|---|---|\n' +
    row('Status', status) +
    row('Commit', links.commit(input.commitSha)) +
    row('Branch', optionalCode(input.branch)) +
    row('Service', input.service ? commentText(input.service, 100) : undefined) +
    row('Image', optionalCode(input.imageId)) +
    row('Snapshot', optionalCode(input.snapshotId)) +
    row('Sandbox', optionalCode(input.sandboxId)) +
    row('Expires', input.expiresAt ? `${isoSeconds(input.expiresAt)} (${relative(input.expiresAt, input.at)})` : undefined) +
    row('Open ports', portsCell(input.ports ?? [])) +
    row('Error', input.error ? commentText(input.error) : undefined) +
    row('Run', links.run(input.run)) +
    row('Updated', isoSeconds(input.at))
  if (input.reach) text += `\n**How to reach it**\n\n${codeBlock(input.reach, 'sh')}\n`
  return text
}

/** Markdown after teardown: the same marker, saying what was removed, when, and by which run. */
export function renderRemovedPreviewComment(input: RemovedPreviewInput): string {
  const links = new Links(input.serverUrl, input.repository)
  const removed = input.removed.length === 0
    ? 'nothing was left to remove'
    : input.removed.map((item) => `${commentText(item.what, 40)} ${codeCell(item.id)}`).join(', ')
  return (
    `${stickyMarker(input.name)}\n### ${STATUS_SYMBOL.removed} Preview \`${input.name}\`: removed\n\n` +
    '| | |\n|---|---|\n' +
    row('Status', `${STATUS_SYMBOL.removed} removed`) +
    row('Removed', removed) +
    row('Reason', input.reason ? commentText(input.reason, 300) : undefined) +
    row('Last commit', input.commitSha ? links.commit(input.commitSha) : undefined) +
    row('When', isoSeconds(input.at)) +
    row('By', links.run(input.run)) +
    '\nThis preview no longer exists; the ids above are kept for reference.\n'
  )
}
