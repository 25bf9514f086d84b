/**
 * Every key the action keeps in step state, in one place. The post step reads what main wrote; values
 * are JSON validated on read, and no secret is ever stored (post reads the token from its inputs/env).
 */
import * as core from '@actions/core'

const IS_POST = 'isPost'
const REMOTE_WORK = 'remoteWork'

/** One remote operation the action started, with what the post step needs to reach it again. */
export interface RemoteWork {
  provider: 'contree'
  apiUrl: string
  project?: string
  operationId: string
  /** What it was, for messages: "run", "import python:3.12", "build step 3/7". */
  label: string
  /** `live` until the action saw it end; `cancel-requested` after a signal asked the service to stop it. */
  state: 'live' | 'cancel-requested' | 'done'
}

export function isPost(): boolean {
  return core.getState(IS_POST) === 'true'
}

/** Called by main before anything else, so the post step knows it is the post step. */
export function markMainStarted(): void {
  core.saveState(IS_POST, 'true')
}

/** Rewrites the whole list; the runner keeps the last value written for a key. Synchronous append. */
export function saveRemoteWork(work: readonly RemoteWork[]): void {
  core.saveState(REMOTE_WORK, JSON.stringify(work))
}

/** Reads the list main left behind; missing or malformed state is an empty list plus a reason. */
export function readRemoteWork(): { work: RemoteWork[]; problem?: string } {
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
    (item): item is RemoteWork =>
      typeof item === 'object' &&
      item !== null &&
      typeof item.operationId === 'string' &&
      typeof item.apiUrl === 'string' &&
      item.provider === 'contree',
  )
  return work.length === parsed.length ? { work } : { work, problem: 'some saved remote-work entries were malformed and skipped' }
}
