/**
 * Every key the action keeps in step state, in one place. The post step reads what main wrote; values
 * are JSON validated on read, and no secret is ever stored (post reads the token from its inputs/env).
 */
import * as core from '@actions/core'

const IS_POST = 'isPost'
const REMOTE_WORK = 'remoteWork'

export type ProviderName = 'contree' | 'together'

/**
 * One piece of remote work the action started, with what the post step needs to reach it again and
 * what cancelling it means: an `operation` (ConTree: DELETE it), a `build` (Together: DELETE the build),
 * a `sandbox` (Together: terminate it), an `exec` (Together: kill the command inside `parentId`, its
 * sandbox; a sandbox kept alive on purpose is not live work, but the command it runs for the step is).
 */
export interface LiveWork {
  provider: ProviderName
  kind: 'operation' | 'build' | 'sandbox' | 'exec'
  id: string
  /** The work this one runs inside and is reached through (an exec's sandbox). */
  parentId?: string
  /** The service base URL the work lives on (for a Together build: the builder's). */
  endpoint: string
  project?: string
  /** What it was, for messages: "run", "import python:3.12", "build step 3/7". */
  label: string
  /** `live` until the action saw it end; `cancel-requested` after the action asked the service to stop it. */
  state: 'live' | 'cancel-requested' | 'done'
}

const PROVIDERS: ReadonlySet<string> = new Set(['contree', 'together'])
const KINDS: ReadonlySet<string> = new Set(['operation', 'build', 'sandbox', 'exec'])

/** The registry key of a piece of work: its id is unique only per provider and kind. */
export function workKey(work: Pick<LiveWork, 'provider' | 'kind' | 'id'>): string {
  return `${work.provider}/${work.kind}/${work.id}`
}

export function isPost(): boolean {
  return core.getState(IS_POST) === 'true'
}

/** Called by main before anything else, so the post step knows it is the post step. */
export function markMainStarted(): void {
  core.saveState(IS_POST, 'true')
}

/** Rewrites the whole list; the runner keeps the last value written for a key. Synchronous append. */
export function saveLiveWork(work: readonly LiveWork[]): void {
  core.saveState(REMOTE_WORK, JSON.stringify(work))
}

/** Reads the list main left behind; missing or malformed state is an empty list plus a reason. */
export function readLiveWork(): { work: LiveWork[]; problem?: string } {
  const value = core.getState(REMOTE_WORK)
  if (!value) return { work: [] }
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    return { work: [], problem: 'the saved remote-work state is not valid JSON' }
  }
  if (!Array.isArray(parsed)) return { work: [], problem: 'the saved remote-work state is not a list' }
  const work = parsed.filter(
    (item): item is LiveWork =>
      typeof item === 'object' &&
      item !== null &&
      typeof item.id === 'string' &&
      item.id !== '' &&
      typeof item.endpoint === 'string' &&
      typeof item.label === 'string' &&
      PROVIDERS.has(item.provider) &&
      KINDS.has(item.kind) &&
      (item.parentId === undefined || typeof item.parentId === 'string'),
  )
  return work.length === parsed.length ? { work } : { work, problem: 'some saved remote-work entries were malformed and skipped' }
}
