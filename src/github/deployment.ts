/**
 * An optional GitHub Deployment per preview: shows it in the PR timeline and the Environments list
 * (platform notes, pr-previews.md). The deployment is transient (`transient_environment: true`: shown
 * as destroyed once inactive), never merges anything (`auto_merge: false`) and does not wait for
 * commit statuses (`required_contexts: []`, the PR's own checks are still running).
 *
 * Lifecycle: start (create + `in_progress`), finish (`success` with the preview's URL, or `failure`),
 * teardown (`inactive`, then delete). GitHub's `auto_inactive` skips transient environments, so a
 * successful refresh retires the older deployments of its environment itself; a deployment can only
 * be deleted once inactive. Newer deployments are never touched: they belong to a newer run.
 */
import { truncateText } from '../output/markdown-escape.ts'
import { httpUrl } from './comment-markdown.ts'
import { GitHubApiError, type GitHubCallPurpose } from './errors.ts'
import type { RepositoryRef } from './refs.ts'
import { GitHubRequester, type GitHubClient, type GitHubRetryOptions } from './requester.ts'

export const DEPLOYMENT_PERMISSION = 'deployments: write'
/** GitHub's limit on a deployment status description. */
const MAX_DESCRIPTION_CHARS = 140

/** The environment a PR's preview deploys to unless the workflow names one. */
export function previewEnvironment(pullNumber: number, override?: string): string {
  const named = override?.trim()
  return named ? named : `preview/pr-${pullNumber}`
}

export interface StartPreviewDeploymentInput {
  /** The commit to deploy: the PR head SHA (a fork's branch does not exist in the base repository). */
  ref: string
  environment: string
  /** The workflow run's URL: the deployment's log. */
  logUrl: string
  description?: string
  /** Stored with the deployment, e.g. { preview: 'web', pull_request: 7 }. */
  payload?: Record<string, unknown>
}

export interface FinishPreviewDeploymentInput {
  deploymentId: number
  environment: string
  outcome: 'success' | 'failure'
  logUrl: string
  /** Where the preview answers; linked from the PR only on success and when http(s). */
  environmentUrl?: string
  description?: string
}

export interface FinishResult {
  /** False when a newer run had already removed this deployment: nothing was reported. */
  reported: boolean
  /** Older deployments of the environment made inactive and deleted. */
  retired: number
}

function purpose(what: string): GitHubCallPurpose {
  return { what, permission: DEPLOYMENT_PERMISSION }
}

function isNotFound(error: unknown): boolean {
  return error instanceof GitHubApiError && error.status === 404
}

function description(text: string | undefined): { description?: string } {
  return text === undefined ? {} : { description: truncateText(text, MAX_DESCRIPTION_CHARS) }
}

/** Creates the deployment and marks it in progress; returns its id. */
export async function startPreviewDeployment(
  client: GitHubClient,
  repository: RepositoryRef,
  input: StartPreviewDeploymentInput,
  options: GitHubRetryOptions = {},
): Promise<{ deploymentId: number }> {
  const requester = new GitHubRequester(client, options)
  const { owner, repo } = repository
  const where = `environment ${input.environment} of ${owner}/${repo}`
  const created = await requester.call(purpose(`create a deployment for ${where}`), 'POST', () =>
    client.rest.repos.createDeployment({
      owner,
      repo,
      ref: input.ref,
      environment: input.environment,
      task: 'deploy',
      transient_environment: true,
      production_environment: false,
      auto_merge: false,
      required_contexts: [],
      ...(input.payload ? { payload: input.payload } : {}),
      ...description(input.description),
    }),
  )
  // 202 carries a merge message instead of a deployment; auto_merge: false rules it out, but say so.
  if (!('id' in created.data)) {
    throw new GitHubApiError(`Could not create a deployment for ${where}: GitHub answered "${created.data.message ?? ''}" instead of a deployment.`, created.status, created.data.message)
  }
  const deploymentId = created.data.id
  await requester.call(purpose(`mark deployment ${deploymentId} in progress for ${where}`), 'POST', () =>
    client.rest.repos.createDeploymentStatus({
      owner,
      repo,
      deployment_id: deploymentId,
      state: 'in_progress',
      log_url: input.logUrl,
      ...description(input.description),
    }),
  )
  return { deploymentId }
}

/** Reports the outcome; on success, retires the environment's older deployments. */
export async function finishPreviewDeployment(
  client: GitHubClient,
  repository: RepositoryRef,
  input: FinishPreviewDeploymentInput,
  options: GitHubRetryOptions = {},
): Promise<FinishResult> {
  const requester = new GitHubRequester(client, options)
  const { owner, repo } = repository
  const where = `environment ${input.environment} of ${owner}/${repo}`
  const environmentUrl = input.outcome === 'success' && input.environmentUrl ? httpUrl(input.environmentUrl)?.href : undefined
  try {
    await requester.call(purpose(`mark deployment ${input.deploymentId} ${input.outcome} for ${where}`), 'POST', () =>
      client.rest.repos.createDeploymentStatus({
        owner,
        repo,
        deployment_id: input.deploymentId,
        state: input.outcome,
        log_url: input.logUrl,
        ...(environmentUrl ? { environment_url: environmentUrl } : {}),
        ...description(input.description),
      }),
    )
  } catch (error) {
    if (isNotFound(error)) return { reported: false, retired: 0 }
    throw error
  }
  if (input.outcome !== 'success') return { reported: true, retired: 0 }
  const retired = await retire(requester, repository, input.environment, input.logUrl, (id) => id < input.deploymentId)
  return { reported: true, retired }
}

/** Makes every deployment of the environment inactive and deletes it; safe to repeat. */
export async function tearDownPreviewDeployments(
  client: GitHubClient,
  repository: RepositoryRef,
  input: { environment: string; logUrl: string },
  options: GitHubRetryOptions = {},
): Promise<{ removed: number }> {
  const requester = new GitHubRequester(client, options)
  return { removed: await retire(requester, repository, input.environment, input.logUrl, () => true) }
}

async function retire(
  requester: GitHubRequester,
  { owner, repo }: RepositoryRef,
  environment: string,
  logUrl: string,
  selects: (deploymentId: number) => boolean,
): Promise<number> {
  const client = requester.client
  const where = `environment ${environment} of ${owner}/${repo}`
  const deployments = await requester.listAll(purpose(`list the deployments of ${where}`), () =>
    client.rest.repos.listDeployments({ owner, repo, environment, per_page: 100 }),
  )
  let removed = 0
  for (const { id } of deployments.filter((d) => selects(d.id))) {
    try {
      // GitHub deletes a deployment only once inactive (unless it is the repository's only one).
      await requester.call(purpose(`mark deployment ${id} inactive for ${where}`), 'POST', () =>
        client.rest.repos.createDeploymentStatus({ owner, repo, deployment_id: id, state: 'inactive', log_url: logUrl }),
      )
      await requester.call(purpose(`delete deployment ${id} of ${where}`), 'DELETE', () =>
        client.rest.repos.deleteDeployment({ owner, repo, deployment_id: id }),
      )
      removed += 1
    } catch (error) {
      // Another run removed it first.
      if (!isNotFound(error)) throw error
    }
  }
  return removed
}
