// The REST routes: issue comments, deployments and their statuses, one pull request. Checks run in
// GitHub's order: route, repository visible to the token (404), permission (403), body (400/422).
import type { ServerResponse } from 'node:http'
import { DOCS, paginate, sendError, sendJson, sendNoContent } from './respond.ts'
import type { Repo, Store, Urls } from './store.ts'
import {
  NOT_ACCESSIBLE_MESSAGE,
  type DeploymentState,
  type PermissionLevel,
  type PermissionScope,
  type TokenGrant,
} from './types.ts'

/** GitHub's limit on a comment body. */
export const MAX_COMMENT_CHARS = 65_536
/** GitHub's limit on a deployment status description. */
export const MAX_STATUS_DESCRIPTION_CHARS = 140

const COMMENTS_DOCS = `${DOCS}/issues/comments`
const DEPLOYMENTS_DOCS = `${DOCS}/deployments/deployments`
const STATUSES_DOCS = `${DOCS}/deployments/statuses`
const PULLS_DOCS = `${DOCS}/pulls/pulls`

const DEPLOYMENT_STATES = new Set<DeploymentState>(['error', 'failure', 'inactive', 'in_progress', 'queued', 'pending', 'success'])

export interface RouteRequest {
  method: string
  /** Route path: prefix removed, `/repositories/{id}` already rewritten. */
  path: string
  query: URLSearchParams
  grant: TokenGrant
  /** Parsed JSON object for writes; undefined for reads. */
  body: Record<string, unknown> | undefined
}

export interface RouteContext {
  store: Store
  urls: Urls
}

type Handler = (ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, params: string[]) => void

interface Route {
  method: string
  pattern: RegExp
  handler: Handler
}

const routes: Route[] = [
  { method: 'GET', pattern: /^\/issues\/(\d+)\/comments$/, handler: listComments },
  { method: 'POST', pattern: /^\/issues\/(\d+)\/comments$/, handler: createComment },
  { method: 'GET', pattern: /^\/issues\/comments\/(\d+)$/, handler: getComment },
  { method: 'PATCH', pattern: /^\/issues\/comments\/(\d+)$/, handler: updateComment },
  { method: 'DELETE', pattern: /^\/issues\/comments\/(\d+)$/, handler: deleteComment },
  { method: 'GET', pattern: /^\/deployments$/, handler: listDeployments },
  { method: 'POST', pattern: /^\/deployments$/, handler: createDeployment },
  { method: 'GET', pattern: /^\/deployments\/(\d+)$/, handler: getDeployment },
  { method: 'DELETE', pattern: /^\/deployments\/(\d+)$/, handler: deleteDeployment },
  { method: 'GET', pattern: /^\/deployments\/(\d+)\/statuses$/, handler: listStatuses },
  { method: 'POST', pattern: /^\/deployments\/(\d+)\/statuses$/, handler: createStatus },
  { method: 'GET', pattern: /^\/pulls\/(\d+)$/, handler: getPull },
]

/** Answers one API request; unknown routes get GitHub's 404. */
export function dispatch(ctx: RouteContext, req: RouteRequest, res: ServerResponse): void {
  const repoPath = /^\/repos\/([^/]+)\/([^/]+)(\/.*)$/.exec(req.path)
  if (repoPath === null) return sendError(res, 404, 'Not Found')
  const [, owner = '', name = '', rest = ''] = repoPath
  const repo = ctx.store.repo(decodeURIComponent(owner), decodeURIComponent(name))
  // A repository the token may not see is indistinguishable from one that does not exist.
  const visible = repo !== undefined && (req.grant.repositories === undefined ||
    req.grant.repositories.some((full) => full.toLowerCase() === `${repo.owner}/${repo.name}`.toLowerCase()))
  for (const route of routes) {
    if (route.method !== req.method) continue
    const match = route.pattern.exec(rest)
    if (match === null) continue
    if (!visible) return sendError(res, 404, 'Not Found', DOCS)
    return route.handler(ctx, req, res, repo, match.slice(1))
  }
  sendError(res, 404, 'Not Found')
}

function level(grant: TokenGrant, scope: PermissionScope): PermissionLevel {
  return grant.permissions?.[scope] ?? 'write'
}

function allows(grant: TokenGrant, scopes: readonly PermissionScope[], needed: 'read' | 'write'): boolean {
  return scopes.some((scope) => {
    const have = level(grant, scope)
    return needed === 'read' ? have !== 'none' : have === 'write'
  })
}

/** Sends GitHub's 403 and returns false when the token lacks every one of `scopes` at `needed`. */
function permitted(res: ServerResponse, grant: TokenGrant, scopes: readonly PermissionScope[], needed: 'read' | 'write', docs: string): boolean {
  if (allows(grant, scopes, needed)) return true
  sendError(res, 403, NOT_ACCESSIBLE_MESSAGE, docs)
  return false
}

/** A PR's comments may be written with `issues` or `pull-requests`; a plain issue's only with `issues`. */
function commentScopes(repo: Repo, number: number): PermissionScope[] {
  return repo.pulls.has(number) ? ['issues', 'pull-requests'] : ['issues']
}

function linkBase(ctx: RouteContext, repo: Repo, rest: string): string {
  return `${ctx.urls.api}/repositories/${repo.id}${rest}`
}

function missingField(res: ServerResponse, field: string, docs: string): void {
  sendError(res, 422, `Invalid request.\n\n"${field}" wasn't supplied.`, docs)
}

function invalid(res: ServerResponse, resource: string, field: string, message: string, docs: string): void {
  sendError(res, 422, 'Validation Failed', docs, {}, {
    errors: [{ resource, code: 'invalid', field, message }],
  })
}

function listComments(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [n]: string[]): void {
  const number = Number(n)
  if (!ctx.store.hasIssue(repo, number)) return sendError(res, 404, 'Not Found', `${COMMENTS_DOCS}#list-issue-comments`)
  if (!permitted(res, req.grant, commentScopes(repo, number), 'read', `${COMMENTS_DOCS}#list-issue-comments`)) return
  const page = paginate(ctx.store.comments(repo, number), req.query, linkBase(ctx, repo, `/issues/${number}/comments`))
  sendJson(res, 200, page.items, page.link ? { link: page.link } : {})
}

function commentBody(res: ServerResponse, body: Record<string, unknown> | undefined, docs: string): string | undefined {
  const text = body?.['body']
  if (text === undefined || text === null) {
    missingField(res, 'body', docs)
    return undefined
  }
  if (typeof text !== 'string') {
    invalid(res, 'IssueComment', 'body', 'body is not a string', docs)
    return undefined
  }
  if (text.length > MAX_COMMENT_CHARS) {
    invalid(res, 'IssueComment', 'data', `Body is too long (maximum is ${MAX_COMMENT_CHARS} characters)`, docs)
    return undefined
  }
  return text
}

function createComment(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [n]: string[]): void {
  const number = Number(n)
  const docs = `${COMMENTS_DOCS}#create-an-issue-comment`
  if (!ctx.store.hasIssue(repo, number)) return sendError(res, 404, 'Not Found', docs)
  if (!permitted(res, req.grant, commentScopes(repo, number), 'write', docs)) return
  const body = commentBody(res, req.body, docs)
  if (body === undefined) return
  const comment = ctx.store.createComment(repo, number, body, req.grant.login ?? 'github-actions[bot]')
  sendJson(res, 201, comment, { location: comment.url })
}

function withComment(
  ctx: RouteContext,
  res: ServerResponse,
  repo: Repo,
  id: string | undefined,
  docs: string,
): ReturnType<Store['findComment']> {
  const found = ctx.store.findComment(repo, Number(id))
  if (found === undefined) sendError(res, 404, 'Not Found', docs)
  return found
}

function issueNumberOf(issueUrl: string): number {
  return Number(issueUrl.slice(issueUrl.lastIndexOf('/') + 1))
}

function getComment(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [id]: string[]): void {
  const docs = `${COMMENTS_DOCS}#get-an-issue-comment`
  const found = withComment(ctx, res, repo, id, docs)
  if (found === undefined) return
  if (!permitted(res, req.grant, commentScopes(repo, issueNumberOf(found.comment.issue_url)), 'read', docs)) return
  sendJson(res, 200, found.comment)
}

function updateComment(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [id]: string[]): void {
  const docs = `${COMMENTS_DOCS}#update-an-issue-comment`
  const found = withComment(ctx, res, repo, id, docs)
  if (found === undefined) return
  if (!permitted(res, req.grant, commentScopes(repo, issueNumberOf(found.comment.issue_url)), 'write', docs)) return
  const body = commentBody(res, req.body, docs)
  if (body === undefined) return
  ctx.store.updateComment(found.comment, body)
  sendJson(res, 200, found.comment)
}

function deleteComment(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [id]: string[]): void {
  const docs = `${COMMENTS_DOCS}#delete-an-issue-comment`
  const found = withComment(ctx, res, repo, id, docs)
  if (found === undefined) return
  if (!permitted(res, req.grant, commentScopes(repo, issueNumberOf(found.comment.issue_url)), 'write', docs)) return
  ctx.store.deleteComment(repo, found.comment.id)
  sendNoContent(res)
}

/** What a ref names: a branch, `refs/heads/…`, `refs/pull/N/head`, or a commit the repository has. */
function resolveRef(repo: Repo, ref: string): string | undefined {
  const branch = ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : ref
  const head = repo.branches.get(branch)
  if (head !== undefined) return head
  const pullRef = /^refs\/pull\/(\d+)\/(?:head|merge)$/.exec(ref)
  if (pullRef !== null) return repo.pulls.get(Number(pullRef[1]))?.headSha
  if (/^[0-9a-f]{40}$/i.test(ref)) {
    const known = [...repo.branches.values(), ...[...repo.pulls.values()].map((p) => p.headSha)]
    return known.find((sha) => sha.toLowerCase() === ref.toLowerCase())
  }
  return undefined
}

function listDeployments(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo): void {
  const docs = `${DEPLOYMENTS_DOCS}#list-deployments`
  if (!permitted(res, req.grant, ['deployments'], 'read', docs)) return
  const filters = (['sha', 'ref', 'task', 'environment'] as const).flatMap((name) => {
    const value = req.query.get(name)
    return value === null ? [] : [[name, value] as const]
  })
  const selected = repo.deployments
    .filter((d) => filters.every(([name, value]) => d[name] === value))
    .reverse()
  const page = paginate(selected, req.query, linkBase(ctx, repo, '/deployments'))
  sendJson(res, 200, page.items, page.link ? { link: page.link } : {})
}

function typeError(res: ServerResponse, field: string, expected: string, docs: string): void {
  invalid(res, 'Deployment', field, `${field} is not ${expected}`, docs)
}

function createDeployment(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo): void {
  const docs = `${DEPLOYMENTS_DOCS}#create-a-deployment`
  if (!permitted(res, req.grant, ['deployments'], 'write', docs)) return
  const body = req.body ?? {}
  const ref = body['ref']
  if (ref === undefined) return missingField(res, 'ref', docs)
  if (typeof ref !== 'string') return typeError(res, 'ref', 'a string', docs)
  const booleans = ['transient_environment', 'production_environment', 'auto_merge'] as const
  for (const name of booleans) {
    if (body[name] !== undefined && typeof body[name] !== 'boolean') return typeError(res, name, 'a boolean', docs)
  }
  for (const name of ['environment', 'task'] as const) {
    if (body[name] !== undefined && typeof body[name] !== 'string') return typeError(res, name, 'a string', docs)
  }
  const contexts = body['required_contexts']
  if (contexts !== undefined && !(Array.isArray(contexts) && contexts.every((c) => typeof c === 'string'))) {
    return typeError(res, 'required_contexts', 'an array of strings', docs)
  }
  const description = body['description']
  if (description !== undefined && description !== null && typeof description !== 'string') {
    return typeError(res, 'description', 'a string', docs)
  }
  const sha = resolveRef(repo, ref)
  if (sha === undefined) return sendError(res, 422, `No ref found for: ${ref}`, docs)
  const environment = (body['environment'] as string | undefined) ?? 'production'
  const deployment = ctx.store.createDeployment(repo, {
    ref,
    sha,
    task: (body['task'] as string | undefined) ?? 'deploy',
    payload: body['payload'] ?? {},
    environment,
    description: (description as string | null | undefined) ?? null,
    transient: (body['transient_environment'] as boolean | undefined) ?? false,
    production: (body['production_environment'] as boolean | undefined) ?? environment === 'production',
    login: req.grant.login ?? 'github-actions[bot]',
  })
  sendJson(res, 201, deployment)
}

function findDeployment(repo: Repo, id: string | undefined) {
  return repo.deployments.find((d) => d.id === Number(id))
}

function getDeployment(_ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [id]: string[]): void {
  const docs = `${DEPLOYMENTS_DOCS}#get-a-deployment`
  const deployment = findDeployment(repo, id)
  if (deployment === undefined) return sendError(res, 404, 'Not Found', docs)
  if (!permitted(res, req.grant, ['deployments'], 'read', docs)) return
  sendJson(res, 200, deployment)
}

function deleteDeployment(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [id]: string[]): void {
  const docs = `${DEPLOYMENTS_DOCS}#delete-a-deployment`
  const deployment = findDeployment(repo, id)
  if (deployment === undefined) return sendError(res, 404, 'Not Found', docs)
  if (!permitted(res, req.grant, ['deployments'], 'write', docs)) return
  // GitHub keeps an active deployment unless it is the repository's only one.
  if (repo.deployments.length > 1 && ctx.store.latestState(repo, deployment.id) !== 'inactive') {
    return sendError(res, 422, 'We cannot delete an active deployment unless it is the only deployment in a given environment.', docs)
  }
  ctx.store.deleteDeployment(repo, deployment.id)
  sendNoContent(res)
}

function listStatuses(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [id]: string[]): void {
  const docs = `${STATUSES_DOCS}#list-deployment-statuses`
  const deployment = findDeployment(repo, id)
  if (deployment === undefined) return sendError(res, 404, 'Not Found', docs)
  if (!permitted(res, req.grant, ['deployments'], 'read', docs)) return
  const newestFirst = [...ctx.store.statusesOf(repo, deployment.id)].reverse()
  const page = paginate(newestFirst, req.query, linkBase(ctx, repo, `/deployments/${deployment.id}/statuses`))
  sendJson(res, 200, page.items, page.link ? { link: page.link } : {})
}

function createStatus(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [id]: string[]): void {
  const docs = `${STATUSES_DOCS}#create-a-deployment-status`
  const deployment = findDeployment(repo, id)
  if (deployment === undefined) return sendError(res, 404, 'Not Found', docs)
  if (!permitted(res, req.grant, ['deployments'], 'write', docs)) return
  const body = req.body ?? {}
  const state = body['state']
  if (state === undefined) return missingField(res, 'state', docs)
  if (typeof state !== 'string' || !DEPLOYMENT_STATES.has(state as DeploymentState)) {
    return invalid(res, 'DeploymentStatus', 'state', `state is not one of ${[...DEPLOYMENT_STATES].join(', ')}`, docs)
  }
  for (const name of ['description', 'log_url', 'target_url', 'environment_url', 'environment'] as const) {
    if (body[name] !== undefined && typeof body[name] !== 'string') {
      return invalid(res, 'DeploymentStatus', name, `${name} is not a string`, docs)
    }
  }
  if (body['auto_inactive'] !== undefined && typeof body['auto_inactive'] !== 'boolean') {
    return invalid(res, 'DeploymentStatus', 'auto_inactive', 'auto_inactive is not a boolean', docs)
  }
  const description = (body['description'] as string | undefined) ?? ''
  if (description.length > MAX_STATUS_DESCRIPTION_CHARS) {
    return invalid(res, 'DeploymentStatus', 'description', `description is too long (maximum is ${MAX_STATUS_DESCRIPTION_CHARS} characters)`, docs)
  }
  const login = req.grant.login ?? 'github-actions[bot]'
  const environment = (body['environment'] as string | undefined) ?? deployment.environment
  const status = ctx.store.createStatus(repo, deployment, {
    state: state as DeploymentState,
    description,
    environment,
    logUrl: (body['log_url'] as string | undefined) ?? (body['target_url'] as string | undefined) ?? '',
    environmentUrl: (body['environment_url'] as string | undefined) ?? '',
    login,
  })
  // auto_inactive (default true): a new success retires earlier successful deployments of the same
  // environment, except transient and production ones (GitHub's documented rule).
  if (state === 'success' && body['auto_inactive'] !== false) {
    for (const other of repo.deployments) {
      if (other.id === deployment.id || other.environment !== environment) continue
      if (other.transient_environment || other.production_environment) continue
      if (ctx.store.latestState(repo, other.id) !== 'success') continue
      ctx.store.createStatus(repo, other, { state: 'inactive', description: '', environment, logUrl: '', environmentUrl: '', login })
    }
  }
  sendJson(res, 201, status)
}

function getPull(ctx: RouteContext, req: RouteRequest, res: ServerResponse, repo: Repo, [n]: string[]): void {
  const docs = `${PULLS_DOCS}#get-a-pull-request`
  const pull = repo.pulls.get(Number(n))
  if (pull === undefined) return sendError(res, 404, 'Not Found', docs)
  if (!permitted(res, req.grant, ['pull-requests'], 'read', docs)) return
  const apiRepo = `${ctx.urls.api}/repos/${repo.owner}/${repo.name}`
  const author = ctx.store.user(pull.user ?? 'octocat')
  const headOwner = pull.fork ? author.login : repo.owner
  const repoShape = (owner: string, fork: boolean) => ({
    id: fork ? repo.id + 1_000_000 : repo.id,
    name: repo.name,
    full_name: `${owner}/${repo.name}`,
    owner: ctx.store.user(owner),
    private: false,
    fork,
    html_url: `${ctx.urls.server}/${owner}/${repo.name}`,
    url: `${ctx.urls.api}/repos/${owner}/${repo.name}`,
    default_branch: repo.defaultBranch,
  })
  const baseRef = pull.baseRef ?? repo.defaultBranch
  sendJson(res, 200, {
    url: `${apiRepo}/pulls/${pull.number}`,
    id: repo.id * 1000 + pull.number,
    node_id: `PR_kwDO${Buffer.from(`pr:${repo.id}:${pull.number}`).toString('base64url')}`,
    html_url: `${ctx.urls.server}/${repo.owner}/${repo.name}/pull/${pull.number}`,
    number: pull.number,
    state: pull.state ?? 'open',
    title: pull.title ?? `Pull request ${pull.number}`,
    user: author,
    head: {
      label: `${headOwner}:${pull.headRef}`,
      ref: pull.headRef,
      sha: pull.headSha,
      user: ctx.store.user(headOwner),
      repo: repoShape(headOwner, pull.fork ?? false),
    },
    base: {
      label: `${repo.owner}:${baseRef}`,
      ref: baseRef,
      sha: repo.branches.get(baseRef) ?? '0'.repeat(40),
      user: ctx.store.user(repo.owner),
      repo: repoShape(repo.owner, false),
    },
  })
}
