/**
 * One sticky comment per pull request and preview, found again by a hidden marker at the start of its
 * body (`<!-- sandbox-preview:NAME -->`) and updated in place (platform notes, pr-previews.md).
 *
 * Comments on a PR go through the issues API and need `pull-requests: write`. Every comment of the PR
 * is listed (pages of 100), since the marker can be anywhere in a long conversation.
 *
 * Two runs on one PR can race (list, see nothing, both create). After creating, the run lists again;
 * when more than one comment carries the marker, the oldest (lowest id: GitHub's ids increase) is kept
 * with this run's body and the others are deleted. Every run picks the same survivor, so racing runs
 * end with exactly one comment; a later run also removes any leftover duplicates.
 */
import { GitHubApiError, type GitHubCallPurpose } from './errors.ts'
import type { PullRequestRef } from './refs.ts'
import { GitHubRequester, type GitHubClient, type GitHubRetryOptions } from './requester.ts'

export type IssueComment = Awaited<ReturnType<GitHubClient['rest']['issues']['createComment']>>['data']

export interface StickyCommentOptions extends GitHubRetryOptions {
  /**
   * Create the comment when none exists (default true). Teardown passes false: a preview that never
   * had a comment needs no "removed" comment either.
   */
  createIfMissing?: boolean
}

export type StickyCommentResult =
  | {
      action: 'created' | 'updated' | 'unchanged'
      commentId: number
      htmlUrl: string
      /** Comments with the same marker that were deleted (left by racing or earlier runs). */
      duplicatesRemoved: number
    }
  | { action: 'absent'; duplicatesRemoved: 0 }

/** GitHub's limit on a comment body. */
export const MAX_COMMENT_CHARS = 65_536
/** The permission every call here needs, as the workflow spells it. */
export const COMMENT_PERMISSION = 'pull-requests: write'

const PREVIEW_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/

/**
 * The hidden marker for a preview. The name must be plain (letters, digits, `.`, `_`, `-`; at most 63)
 * so it can neither end the HTML comment nor make one marker a prefix of another.
 */
export function stickyMarker(previewName: string): string {
  if (!PREVIEW_NAME.test(previewName)) {
    throw new Error(
      `preview name '${previewName.slice(0, 80)}' is not usable in a comment marker: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    )
  }
  return `<!-- sandbox-preview:${previewName} -->`
}

/** Whether a comment is the sticky comment of that marker: the marker opens its body. */
export function carriesMarker(body: string | null | undefined, marker: string): boolean {
  return body !== null && body !== undefined && body.startsWith(marker)
}

/** The body as stored: the marker first, then the rendered text. */
export function withMarker(marker: string, body: string): string {
  return body.startsWith(marker) ? body : `${marker}\n${body}`
}

function purposes(pr: PullRequestRef): Record<'list' | 'create' | 'update' | 'remove', GitHubCallPurpose> {
  const where = `pull request #${pr.number} of ${pr.owner}/${pr.repo}`
  const purpose = (what: string): GitHubCallPurpose => ({ what: `${what} ${where}`, permission: COMMENT_PERMISSION })
  return {
    list: purpose('list the comments of'),
    create: purpose('create the preview comment on'),
    update: purpose('update the preview comment on'),
    remove: purpose('delete a duplicate preview comment on'),
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof GitHubApiError && error.status === 404
}

function byAge(a: IssueComment, b: IssueComment): number {
  return a.id - b.id
}

/** The comments of the PR that carry the preview's marker, oldest first. */
export async function findStickyComments(
  client: GitHubClient,
  pr: PullRequestRef,
  previewName: string,
  options: GitHubRetryOptions = {},
): Promise<IssueComment[]> {
  return new StickyComment(new GitHubRequester(client, options), pr, stickyMarker(previewName)).find()
}

/**
 * Writes `body` (markdown; the marker is added when missing) as the preview's sticky comment: updates
 * the one that exists, or creates it, and leaves exactly one comment with the marker.
 */
export async function upsertStickyComment(
  client: GitHubClient,
  pr: PullRequestRef,
  previewName: string,
  body: string,
  options: StickyCommentOptions = {},
): Promise<StickyCommentResult> {
  const marker = stickyMarker(previewName)
  const text = withMarker(marker, body)
  if (text.length > MAX_COMMENT_CHARS) {
    throw new Error(`the preview comment is ${text.length} characters long; GitHub accepts at most ${MAX_COMMENT_CHARS}`)
  }
  const sticky = new StickyComment(new GitHubRequester(client, options), pr, marker)
  return sticky.upsert(text, options.createIfMissing ?? true)
}

class StickyComment {
  private readonly requester: GitHubRequester
  private readonly pr: PullRequestRef
  private readonly marker: string
  private readonly purpose: ReturnType<typeof purposes>

  constructor(requester: GitHubRequester, pr: PullRequestRef, marker: string) {
    this.requester = requester
    this.pr = pr
    this.marker = marker
    this.purpose = purposes(pr)
  }

  async find(): Promise<IssueComment[]> {
    const { owner, repo, number } = this.pr
    const client = this.requester.client
    const all = await this.requester.listAll(this.purpose.list, () =>
      client.rest.issues.listComments({ owner, repo, issue_number: number, per_page: 100 }),
    )
    return all.filter((comment) => carriesMarker(comment.body, this.marker)).sort(byAge)
  }

  async upsert(body: string, createIfMissing: boolean): Promise<StickyCommentResult> {
    const found = await this.find()
    for (const [index, comment] of found.entries()) {
      const kept = await this.tryUpdate(comment, body)
      // Undefined: deleted by someone between our listing and our update; try the next, else create.
      if (kept === undefined) continue
      const removed = await this.deleteAll(found.slice(index + 1))
      return { action: kept === comment ? 'unchanged' : 'updated', commentId: kept.id, htmlUrl: kept.html_url, duplicatesRemoved: removed }
    }
    if (!createIfMissing) return { action: 'absent', duplicatesRemoved: 0 }
    const created = await this.createOrRecover(body)
    return this.converge(created, body, found)
  }

  /**
   * A POST that failed without a clear answer (5xx, connection lost) may still have created the
   * comment, and is never replayed blindly: a new listing shows whether our body is there.
   */
  private async createOrRecover(body: string): Promise<IssueComment> {
    try {
      return await this.create(body)
    } catch (error) {
      const unclear = error instanceof GitHubApiError && (error.status === 0 || error.status >= 500)
      if (!unclear) throw error
      const written = (await this.find()).find((comment) => comment.body === body)
      if (written === undefined) throw error
      return written
    }
  }

  /**
   * After a create: list again and keep only the oldest comment with the marker. Our own comment is
   * added to what the listing shows, in case the listing lags behind the write; `vanished` are the
   * comments found before the create, all deleted meanwhile, which a lagging listing may still show.
   */
  private async converge(created: IssueComment, body: string, vanished: readonly IssueComment[]): Promise<StickyCommentResult> {
    const listed = await this.find()
    const gone = new Set(vanished.map((c) => c.id))
    const all = [...listed.filter((c) => c.id !== created.id && !gone.has(c.id)), created].sort(byAge)
    let survivor = created
    for (const candidate of all) {
      const kept = candidate.id === created.id ? created : await this.tryUpdate(candidate, body)
      if (kept !== undefined) {
        survivor = kept
        break
      }
      gone.add(candidate.id)
    }
    const removed = await this.deleteAll(all.filter((c) => c.id !== survivor.id && !gone.has(c.id)))
    return {
      action: survivor.id === created.id ? 'created' : 'updated',
      commentId: survivor.id,
      htmlUrl: survivor.html_url,
      duplicatesRemoved: removed,
    }
  }

  private async create(body: string): Promise<IssueComment> {
    const { owner, repo, number } = this.pr
    const client = this.requester.client
    const response = await this.requester.call(this.purpose.create, 'POST', () =>
      client.rest.issues.createComment({ owner, repo, issue_number: number, body }),
    )
    return response.data
  }

  /** The comment with `body`, or undefined when it no longer exists. Unchanged bodies are not re-sent. */
  private async tryUpdate(comment: IssueComment, body: string): Promise<IssueComment | undefined> {
    if (comment.body === body) return comment
    const { owner, repo } = this.pr
    const client = this.requester.client
    try {
      const response = await this.requester.call(this.purpose.update, 'PATCH', () =>
        client.rest.issues.updateComment({ owner, repo, comment_id: comment.id, body }),
      )
      return response.data
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw error
    }
  }

  /** Deletes the comments; one already gone (another run removed it) counts as removed. */
  private async deleteAll(comments: readonly IssueComment[]): Promise<number> {
    const { owner, repo } = this.pr
    const client = this.requester.client
    for (const comment of comments) {
      try {
        await this.requester.call(this.purpose.remove, 'DELETE', () =>
          client.rest.issues.deleteComment({ owner, repo, comment_id: comment.id }),
        )
      } catch (error) {
        if (!isNotFound(error)) throw error
      }
    }
    return comments.length
  }
}
