/**
 * What a preview or teardown run writes on GitHub: the sticky PR comment and, when asked, a transient
 * Deployment. Reads the run's own facts (repository, server, run id, event) from the runner's
 * environment, and talks to GITHUB_API_URL (GHES sets it) unless `github-api-url` says otherwise.
 * Every wait GitHub asks for is told in the log and bounded (requester.ts).
 *
 * @actions/github (Octokit) is loaded only when a preview writes to GitHub: every other run would pay
 * for it in memory (about 6 MB of RSS) for nothing.
 */
import { existsSync, readFileSync } from 'node:fs'
import * as core from '@actions/core'
import { InputError } from '../errors.ts'
import {
  finishPreviewDeployment,
  previewEnvironment,
  startPreviewDeployment,
  tearDownPreviewDeployments,
} from '../github/deployment.ts'
import { renderPreviewComment, renderRemovedPreviewComment, type PreviewCommentInput, type RemovedPreviewInput } from '../github/preview-comment.ts'
import type { PullRequestRef, RepositoryRef, WorkflowRunRef } from '../github/refs.ts'
import type { GitHubClient, GitHubRetryOptions } from '../github/requester.ts'
import { upsertStickyComment, type StickyCommentResult } from '../github/sticky-comment.ts'
import type { PreviewInputs } from './mode-inputs.ts'

/** Where on GitHub this run is, from the runner's environment. */
export interface RunPlace {
  repository: RepositoryRef
  serverUrl: string
  run: WorkflowRunRef
  /** The run's page: a deployment's log. */
  runUrl: string
}

export function runPlace(env: NodeJS.ProcessEnv = process.env): RunPlace {
  const full = env['GITHUB_REPOSITORY'] ?? ''
  const [owner, repo, ...rest] = full.split('/')
  if (!owner || !repo || rest.length) throw new Error(`GITHUB_REPOSITORY is "${full}", not owner/name: is this running in a workflow?`)
  const serverUrl = (env['GITHUB_SERVER_URL'] || 'https://github.com').replace(/\/+$/, '')
  const id = Number(env['GITHUB_RUN_ID'])
  const attempt = Number(env['GITHUB_RUN_ATTEMPT'] || '1')
  const run: WorkflowRunRef = { id: Number.isSafeInteger(id) && id > 0 ? id : 1, attempt: Number.isSafeInteger(attempt) && attempt > 0 ? attempt : 1 }
  const runUrl = `${serverUrl}/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}/actions/runs/${run.id}`
  return { repository: { owner, repo }, serverUrl, run, runUrl }
}

/**
 * The event as pull-request.ts reads it, from the runner's environment as @actions/github's `context`
 * reads it: the payload is the JSON file at GITHUB_EVENT_PATH (none when there is no such file).
 */
export function eventContext(env: NodeJS.ProcessEnv = process.env): { eventName: string; payload: Record<string, unknown>; actor: string } {
  const path = env['GITHUB_EVENT_PATH']
  let payload: Record<string, unknown> = {}
  if (path && existsSync(path)) {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'))
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) payload = parsed as Record<string, unknown>
  } else if (path) core.debug(`GITHUB_EVENT_PATH ${path} does not exist`)
  return { eventName: env['GITHUB_EVENT_NAME'] ?? '', payload, actor: env['GITHUB_ACTOR'] ?? '' }
}

/**
 * The preview's GitHub writer, or a reason there is none: comments and deployments both off, or no
 * token to write them with (then the caller warns once and the preview still happens).
 */
export class PreviewGitHub {
  private readonly client: GitHubClient
  private readonly place: RunPlace
  private readonly pr: PullRequestRef
  private readonly options: GitHubRetryOptions

  /** The writer for `settings`; fails with an input error when there is no token to write with. */
  static async open(settings: PreviewInputs, place: RunPlace, pullNumber: number, signal: AbortSignal): Promise<PreviewGitHub> {
    if (!settings.githubToken) throw new InputError('github-token', 'is empty, and the preview comment (comment: true) or deployment needs it; pass ${{ github.token }} with permissions: pull-requests: write')
    const { getOctokit } = await import('@actions/github')
    return new PreviewGitHub(getOctokit(settings.githubToken, settings.githubApiUrl ? { baseUrl: settings.githubApiUrl } : {}), place, pullNumber, signal)
  }

  private constructor(client: GitHubClient, place: RunPlace, pullNumber: number, signal: AbortSignal) {
    this.client = client
    this.place = place
    this.pr = { ...place.repository, number: pullNumber }
    this.options = { signal, onWait: (line) => core.info(line) }
  }

  async writeComment(name: string, content: Omit<PreviewCommentInput, 'name' | 'serverUrl' | 'repository' | 'run' | 'at'>): Promise<StickyCommentResult> {
    const body = renderPreviewComment({ ...content, ...this.common(name) })
    return upsertStickyComment(this.client, this.pr, name, body, this.options)
  }

  /** Rewrites the comment as removed; a preview that never had one gets none. */
  async writeRemoved(name: string, content: Omit<RemovedPreviewInput, 'name' | 'serverUrl' | 'repository' | 'run' | 'at'>): Promise<StickyCommentResult> {
    const body = renderRemovedPreviewComment({ ...content, ...this.common(name) })
    return upsertStickyComment(this.client, this.pr, name, body, { ...this.options, createIfMissing: false })
  }

  async startDeployment(name: string, commit: string): Promise<number> {
    const { deploymentId } = await startPreviewDeployment(
      this.client,
      this.place.repository,
      {
        ref: commit,
        environment: this.environment(name),
        logUrl: this.place.runUrl,
        description: `Preview ${name} of pull request #${this.pr.number}`,
        payload: { preview: name, pull_request: this.pr.number },
      },
      this.options,
    )
    return deploymentId
  }

  async finishDeployment(name: string, deploymentId: number, outcome: 'success' | 'failure', description: string): Promise<void> {
    await finishPreviewDeployment(
      this.client,
      this.place.repository,
      { deploymentId, environment: this.environment(name), outcome, logUrl: this.place.runUrl, description },
      this.options,
    )
  }

  async tearDownDeployments(name: string): Promise<number> {
    const { removed } = await tearDownPreviewDeployments(this.client, this.place.repository, { environment: this.environment(name), logUrl: this.place.runUrl }, this.options)
    return removed
  }

  /** `preview/pr-7` for the default name, else `preview/<name>`. */
  private environment(name: string): string {
    return previewEnvironment(this.pr.number, name === `pr-${this.pr.number}` ? undefined : `preview/${name}`)
  }

  private common(name: string): Pick<PreviewCommentInput, 'name' | 'serverUrl' | 'repository' | 'run' | 'at'> {
    return { name, serverUrl: this.place.serverUrl, repository: this.place.repository, run: this.place.run, at: new Date() }
  }
}
