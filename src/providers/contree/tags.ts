/**
 * Moving a ConTree tag from one image to another. An image carries at most one tag and a tag names at
 * most one image, and the service refuses (409) to give an image a tag another one holds, so a move is
 * two requests: take the tag from its holder, give it to the new image. In between the name points
 * nowhere, which for a PR preview or a refreshed base image means "gone". The two requests are
 * therefore one short critical section: it never listens to the job's cancellation (it is bounded by
 * its own budget, well inside the runner's grace before SIGTERM), and when the second request fails,
 * the tag is given back to its old holder, so a cancelled or failed move leaves the name where it was.
 */
import { errorMessage } from '../../errors.ts'
import type { Image } from './wire.ts'

export interface TagApi {
  findImageByTag(tag: string, signal?: AbortSignal): Promise<string | null>
  getImage(uuid: string, signal?: AbortSignal): Promise<Image | null>
  tagImage(uuid: string, tag: string, signal?: AbortSignal): Promise<Image>
  untagImage(uuid: string, tag: string, signal?: AbortSignal): Promise<'untagged' | null>
}

/** The two requests together, from the first byte to the last answer (the runner allows 7.5 s after SIGINT). */
export const TAG_MOVE_BUDGET_MS = 3500
/** Giving the tag back, after a move that failed halfway. */
export const TAG_RESTORE_BUDGET_MS = 2000

export interface TagMove {
  tag: string
  /** The image holding the tag now; null when none does. */
  from: string | null
  to: string
}

export class TagMoveError extends Error {
  /** Whether the tag is known to be back on its old holder (or never left it). */
  readonly restored: boolean
  constructor(message: string, restored: boolean, cause: unknown) {
    super(message, { cause })
    this.name = 'TagMoveError'
    this.restored = restored
  }
}

export async function moveTag(api: Pick<TagApi, 'tagImage' | 'untagImage'>, move: TagMove, opts: { budgetMs?: number; restoreBudgetMs?: number } = {}): Promise<void> {
  if (move.from === move.to) return
  const budget = AbortSignal.timeout(opts.budgetMs ?? TAG_MOVE_BUDGET_MS)
  try {
    if (move.from !== null) await api.untagImage(move.from, move.tag, budget)
    await api.tagImage(move.to, move.tag, budget)
  } catch (error) {
    const what = `moving the tag ${move.tag} to image ${move.to}`
    if (move.from === null) throw new TagMoveError(`${what} failed: ${errorMessage(error)}`, true, error)
    try {
      // Idempotent: when the untag never happened, the old holder simply keeps its tag.
      await api.tagImage(move.from, move.tag, AbortSignal.timeout(opts.restoreBudgetMs ?? TAG_RESTORE_BUDGET_MS))
    } catch (restoreError) {
      throw new TagMoveError(
        `${what} failed (${errorMessage(error)}), and giving it back to image ${move.from} failed too (${errorMessage(restoreError)}): the tag may now name no image`,
        false,
        error,
      )
    }
    throw new TagMoveError(`${what} failed, so it stays on image ${move.from}: ${errorMessage(error)}`, true, error)
  }
}
