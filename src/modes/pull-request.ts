/**
 * Which pull request a preview or teardown run is for, and whether the event closes it: read from the
 * event payload (@actions/github's context) and overridden by the `pr-number` and `sha` inputs, which
 * a `workflow_run` or `workflow_dispatch` run needs (a `workflow_run` of a fork's pull request names
 * none). Pure: the caller passes the payload.
 */
import { InputError } from '../errors.ts'
import type { PreviewInputs } from './mode-inputs.ts'

export interface EventContext {
  eventName: string
  payload: Record<string, unknown>
  /** GITHUB_ACTOR */
  actor?: string
}

export interface PullRequestTarget {
  number: number
  /** The head commit; absent only for a teardown that was not told it (it needs none). */
  headSha?: string
  /** The head branch (untrusted text, for the comment). */
  headRef?: string
  /** The title (untrusted text, for the comment). */
  title?: string
  /** The event closed this pull request (merged or not): its preview goes. */
  closed: boolean
  /** The head is in a fork: the run gets no secrets and a read-only token. */
  fork: boolean
}

interface PayloadPull {
  number?: unknown
  title?: unknown
  state?: unknown
  head?: { sha?: unknown; ref?: unknown; repo?: { fork?: unknown; full_name?: unknown } | null }
  base?: { repo?: { full_name?: unknown } | null }
}

const PULL_EVENTS = new Set(['pull_request', 'pull_request_target'])

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

function pullOf(event: EventContext): PayloadPull | undefined {
  const pull = event.payload.pull_request
  return PULL_EVENTS.has(event.eventName) && typeof pull === 'object' && pull !== null ? (pull as PayloadPull) : undefined
}

/** True when the event is a pull request whose head lives in another repository (a fork). */
export function isForkPullRequest(event: EventContext): boolean {
  const pull = pullOf(event)
  if (!pull) return false
  const head = pull.head?.repo
  if (head === null || head === undefined) return false
  if (head.fork === true) return true
  const base = text(pull.base?.repo?.full_name)
  const own = text(head.full_name)
  return base !== undefined && own !== undefined && base !== own
}

export function pullRequestOf(event: EventContext, inputs: Pick<PreviewInputs, 'pullRequest' | 'sha'>, need: { sha: boolean }): PullRequestTarget {
  const pull = pullOf(event)
  const run = event.eventName === 'workflow_run' ? (event.payload.workflow_run as { head_sha?: unknown; pull_requests?: PayloadPull[] } | undefined) : undefined
  const runPull = run?.pull_requests?.[0]

  const fromEvent = typeof pull?.number === 'number' ? pull.number : typeof runPull?.number === 'number' ? runPull.number : undefined
  const number = inputs.pullRequest ?? fromEvent
  if (number === undefined) {
    throw new InputError(
      'pr-number',
      `is required: this ${event.eventName || 'run'} event names no pull request${event.eventName === 'workflow_run' ? ' (a workflow_run of a fork\'s pull request lists none; pass the number on, e.g. in an artifact)' : ''}`,
    )
  }
  // The event's head commit belongs to its own pull request only.
  const sameRequest = fromEvent === number
  const eventSha = sameRequest ? text(pull?.head?.sha) ?? text(runPull?.head?.sha) ?? text(run?.head_sha) : undefined
  const headSha = inputs.sha ?? eventSha
  if (headSha === undefined && need.sha) {
    throw new InputError('sha', `is required: the commit of pull request #${number} to build is not in this ${event.eventName || 'run'} event`)
  }
  const headRef = sameRequest ? text(pull?.head?.ref) ?? text(runPull?.head?.ref) : undefined
  const title = sameRequest ? text(pull?.title) : undefined
  return {
    number,
    ...(headSha ? { headSha: headSha.toLowerCase() } : {}),
    ...(headRef ? { headRef } : {}),
    ...(title ? { title } : {}),
    closed: sameRequest && pull !== undefined && event.payload.action === 'closed',
    fork: sameRequest && isForkPullRequest(event),
  }
}

/**
 * Why this run has no secrets, when the event says so: a pull request from a fork, or one Dependabot
 * opened (its runs get Dependabot's secrets only). Undefined when a missing token is a mistake.
 */
export function whyNoSecrets(event: EventContext): string | undefined {
  if (!PULL_EVENTS.has(event.eventName)) return undefined
  const pull = pullOf(event)
  if (event.eventName === 'pull_request' && isForkPullRequest(event)) {
    const from = text(pull?.head?.repo?.full_name)
    return `pull request #${String(pull?.number ?? '?')} comes from a fork${from ? ` (${from})` : ''}, and GitHub gives pull_request runs of forks no secrets and a read-only GITHUB_TOKEN`
  }
  if (event.actor === 'dependabot[bot]') return 'this pull request was opened by Dependabot, whose runs get only the Dependabot secrets of the repository'
  return undefined
}
