// The emulator's data: repositories, their pull requests, issue comments, deployments and statuses.
// Ids come from one counter per kind, increasing like GitHub's, so "oldest" is also "lowest id".
import type {
  Deployment,
  DeploymentState,
  DeploymentStatus,
  IssueComment,
  PullSeed,
  RepoSeed,
  User,
} from './types.ts'

export interface Repo {
  id: number
  owner: string
  name: string
  defaultBranch: string
  branches: Map<string, string>
  pulls: Map<number, PullSeed>
  issues: Set<number>
  /** Comments by issue number, in creation order. */
  comments: Map<number, IssueComment[]>
  deployments: Deployment[]
  statuses: Map<number, DeploymentStatus[]>
}

export interface Urls {
  /** API base without a trailing slash, prefix included. */
  api: string
  /** Web base (html_url) without a trailing slash. */
  server: string
}

/** github-actions[bot]'s real account id, so logs read like GitHub's. */
const ACTIONS_BOT_ID = 41898282

export function timestamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z')
}

function nodeId(prefix: string, id: number): string {
  return `${prefix}_kwDO${Buffer.from(`emulator:${id}`).toString('base64url')}`
}

export class Store {
  private readonly repos = new Map<string, Repo>()
  private nextRepoId = 1_296_269
  private nextCommentId = 1_000_000_001
  private nextDeploymentId = 2_000_000_001
  private nextStatusId = 3_000_000_001
  private readonly users = new Map<string, User>()

  private readonly urls: Urls
  private readonly now: () => number

  constructor(urls: Urls, now: () => number) {
    this.urls = urls
    this.now = now
  }

  addRepo(seed: RepoSeed): Repo {
    const repo: Repo = {
      id: seed.id ?? this.nextRepoId++,
      owner: seed.owner,
      name: seed.name,
      defaultBranch: seed.defaultBranch ?? 'main',
      branches: new Map(Object.entries(seed.branches ?? {})),
      pulls: new Map(),
      issues: new Set(seed.issues ?? []),
      comments: new Map(),
      deployments: [],
      statuses: new Map(),
    }
    this.repos.set(key(seed.owner, seed.name), repo)
    for (const pull of seed.pulls ?? []) this.addPull(repo, pull)
    return repo
  }

  addPull(repo: Repo, pull: PullSeed): void {
    repo.pulls.set(pull.number, pull)
    if (!pull.fork) repo.branches.set(pull.headRef, pull.headSha)
  }

  /** Owner and name are case-insensitive on GitHub. */
  repo(owner: string, name: string): Repo | undefined {
    return this.repos.get(key(owner, name))
  }

  repoById(id: number): Repo | undefined {
    for (const repo of this.repos.values()) if (repo.id === id) return repo
    return undefined
  }

  user(login: string): User {
    let user = this.users.get(login)
    if (user === undefined) {
      const isBot = login.endsWith('[bot]')
      const id = login === 'github-actions[bot]' ? ACTIONS_BOT_ID : 5_000_000 + this.users.size
      user = {
        login,
        id,
        node_id: nodeId(isBot ? 'BOT' : 'U', id),
        type: isBot ? 'Bot' : 'User',
        site_admin: false,
        html_url: `${this.urls.server}/${isBot ? `apps/${login.replace('[bot]', '')}` : login}`,
      }
      this.users.set(login, user)
    }
    return user
  }

  hasIssue(repo: Repo, number: number): boolean {
    return repo.pulls.has(number) || repo.issues.has(number)
  }

  comments(repo: Repo, number: number): IssueComment[] {
    let list = repo.comments.get(number)
    if (list === undefined) {
      list = []
      repo.comments.set(number, list)
    }
    return list
  }

  createComment(repo: Repo, number: number, body: string, login: string): IssueComment {
    const id = this.nextCommentId++
    const at = timestamp(this.now())
    const repoApi = `${this.urls.api}/repos/${repo.owner}/${repo.name}`
    const kind = repo.pulls.has(number) ? 'pull' : 'issues'
    const isActions = login === 'github-actions[bot]'
    const comment: IssueComment = {
      id,
      node_id: nodeId('IC', id),
      url: `${repoApi}/issues/comments/${id}`,
      html_url: `${this.urls.server}/${repo.owner}/${repo.name}/${kind}/${number}#issuecomment-${id}`,
      issue_url: `${repoApi}/issues/${number}`,
      body,
      user: this.user(login),
      created_at: at,
      updated_at: at,
      author_association: isActions ? 'NONE' : 'CONTRIBUTOR',
      performed_via_github_app: isActions ? { id: 15368, slug: 'github-actions', name: 'GitHub Actions' } : null,
    }
    this.comments(repo, number).push(comment)
    return comment
  }

  findComment(repo: Repo, id: number): { comment: IssueComment; list: IssueComment[] } | undefined {
    for (const list of repo.comments.values()) {
      const comment = list.find((c) => c.id === id)
      if (comment !== undefined) return { comment, list }
    }
    return undefined
  }

  updateComment(comment: IssueComment, body: string): void {
    comment.body = body
    comment.updated_at = timestamp(this.now())
  }

  deleteComment(repo: Repo, id: number): boolean {
    const found = this.findComment(repo, id)
    if (found === undefined) return false
    found.list.splice(found.list.indexOf(found.comment), 1)
    return true
  }

  createDeployment(
    repo: Repo,
    init: {
      ref: string
      sha: string
      task: string
      payload: unknown
      environment: string
      description: string | null
      transient: boolean
      production: boolean
      login: string
    },
  ): Deployment {
    const id = this.nextDeploymentId++
    const at = timestamp(this.now())
    const repoApi = `${this.urls.api}/repos/${repo.owner}/${repo.name}`
    const deployment: Deployment = {
      id,
      node_id: nodeId('DE', id),
      url: `${repoApi}/deployments/${id}`,
      sha: init.sha,
      ref: init.ref,
      task: init.task,
      payload: init.payload,
      original_environment: init.environment,
      environment: init.environment,
      description: init.description,
      creator: this.user(init.login),
      created_at: at,
      updated_at: at,
      statuses_url: `${repoApi}/deployments/${id}/statuses`,
      repository_url: repoApi,
      transient_environment: init.transient,
      production_environment: init.production,
    }
    repo.deployments.push(deployment)
    repo.statuses.set(id, [])
    return deployment
  }

  createStatus(
    repo: Repo,
    deployment: Deployment,
    init: {
      state: DeploymentState
      description: string
      environment: string
      logUrl: string
      environmentUrl: string
      login: string
    },
  ): DeploymentStatus {
    const id = this.nextStatusId++
    const at = timestamp(this.now())
    const repoApi = `${this.urls.api}/repos/${repo.owner}/${repo.name}`
    const status: DeploymentStatus = {
      id,
      node_id: nodeId('DES', id),
      url: `${deployment.url}/statuses/${id}`,
      state: init.state,
      creator: this.user(init.login),
      description: init.description,
      environment: init.environment,
      target_url: init.logUrl,
      log_url: init.logUrl,
      environment_url: init.environmentUrl,
      created_at: at,
      updated_at: at,
      deployment_url: deployment.url,
      repository_url: repoApi,
    }
    this.statusesOf(repo, deployment.id).push(status)
    deployment.environment = init.environment
    deployment.updated_at = at
    return status
  }

  statusesOf(repo: Repo, deploymentId: number): DeploymentStatus[] {
    let list = repo.statuses.get(deploymentId)
    if (list === undefined) {
      list = []
      repo.statuses.set(deploymentId, list)
    }
    return list
  }

  latestState(repo: Repo, deploymentId: number): DeploymentState | undefined {
    return this.statusesOf(repo, deploymentId).at(-1)?.state
  }

  deleteDeployment(repo: Repo, id: number): void {
    repo.deployments = repo.deployments.filter((d) => d.id !== id)
    repo.statuses.delete(id)
  }
}

function key(owner: string, name: string): string {
  return `${owner.toLowerCase()}/${name.toLowerCase()}`
}
