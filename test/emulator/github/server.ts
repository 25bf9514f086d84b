// startGitHubEmulator: a real HTTP/1.1 server on 127.0.0.1 speaking the parts of GitHub's REST API
// the preview mode uses, with token permissions, rate-limit headers, fault injection, request gates
// for races, a request log, and optionally the GHES path prefix (`/api/v3`).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Faults, Gates, type MatchTarget } from './faults.ts'
import { commonHeaders, DOCS, sendError } from './respond.ts'
import { dispatch, type RouteContext } from './routes.ts'
import { Store, type Urls } from './store.ts'
import {
  SECONDARY_RATE_LIMIT_MESSAGE,
  type Deployment,
  type DeploymentStatus,
  type GitHubEmulatorOptions,
  type GitHubFault,
  type IssueComment,
  type PullSeed,
  type RecordedRequest,
  type RepoSeed,
  type RequestMatch,
  type TokenGrant,
} from './types.ts'

const RATE_LIMIT_DOCS = `${DOCS}/using-the-rest-api/rate-limits-for-the-rest-api`
const DEFAULT_RATE_LIMIT = 1000
const RATE_LIMIT_WINDOW_MS = 60 * 60 * 1000

export interface GitHubEmulator {
  /** What GITHUB_API_URL would be: origin plus prefix, no trailing slash. */
  apiUrl: string
  /** What GITHUB_SERVER_URL would be (html_url base). */
  serverUrl: string
  /** Every API request, in arrival order. */
  requests: RecordedRequest[]
  faults: Faults
  /**
   * The next `times` (default 1) requests matching `match` wait, unprocessed, until `untilAnswers`
   * (default 1) requests matching `until` have been answered.
   */
  holdUntil(match: RequestMatch, until: RequestMatch, options?: { times?: number; untilAnswers?: number }): void
  /** The first `parties` requests matching `match` wait for each other. */
  barrier(match: RequestMatch, parties: number): void
  addRepo(seed: RepoSeed): void
  addPull(owner: string, repo: string, pull: PullSeed): void
  /** Comments written by people, for a PR that already has a conversation. Returns them. */
  seedComments(owner: string, repo: string, number: number, comments: Array<string | { body: string; login: string }>): IssueComment[]
  /** A copy of the PR's comments, oldest first. */
  comments(owner: string, repo: string, number: number): IssueComment[]
  /** Deletes a comment as a person in the web UI would (no API request recorded). */
  deleteComment(owner: string, repo: string, id: number): boolean
  /** A copy of the repository's deployments, oldest first. */
  deployments(owner: string, repo: string): Deployment[]
  /** A copy of a deployment's statuses, oldest first. */
  statuses(owner: string, repo: string, deploymentId: number): DeploymentStatus[]
  close(): Promise<void>
}

interface Usage {
  windowStart: number
  used: number
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^(?:token|bearer)\s+(\S+)\s*$/i.exec(header ?? '')
  return match?.[1]
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** A response that goes nowhere: lets a request be processed when a fault replaces its answer. */
function discardingResponse(): ServerResponse {
  const sink = { setHeader: () => sink, writeHead: () => sink, end: () => sink, statusCode: 200 }
  return sink as unknown as ServerResponse
}

export async function startGitHubEmulator(options: GitHubEmulatorOptions): Promise<GitHubEmulator> {
  const now = options.now ?? Date.now
  const prefix = (options.pathPrefix ?? '').replace(/\/+$/, '')
  const urls: Urls = { api: '', server: '' }
  const store = new Store(urls, now)
  const faults = new Faults()
  const gates = new Gates()
  const requests: RecordedRequest[] = []
  const usage = new Map<string, Usage>()
  const sockets = new Set<Socket>()
  for (const seed of options.repos ?? []) store.addRepo(seed)

  const ctx: RouteContext = { store, urls }

  /** Counts the request against the token's hourly budget and sets GitHub's rate-limit headers. */
  const account = (res: ServerResponse, token: string, grant: TokenGrant): boolean => {
    const limit = grant.rateLimit ?? DEFAULT_RATE_LIMIT
    const at = now()
    let entry = usage.get(token)
    if (entry === undefined || at - entry.windowStart >= RATE_LIMIT_WINDOW_MS) {
      entry = { windowStart: at, used: 0 }
      usage.set(token, entry)
    }
    const reset = String(Math.ceil((entry.windowStart + RATE_LIMIT_WINDOW_MS) / 1000))
    const exhausted = entry.used >= limit
    if (!exhausted) entry.used += 1
    res.setHeader('x-ratelimit-limit', String(limit))
    res.setHeader('x-ratelimit-remaining', String(limit - entry.used))
    res.setHeader('x-ratelimit-reset', reset)
    res.setHeader('x-ratelimit-used', String(entry.used))
    res.setHeader('x-ratelimit-resource', 'core')
    if (exhausted) sendError(res, 403, 'API rate limit exceeded for installation ID 1.', RATE_LIMIT_DOCS)
    return !exhausted
  }

  const injectFault = (res: ServerResponse, fault: GitHubFault, grant: TokenGrant | undefined): void => {
    switch (fault.kind) {
      case 'primary-rate-limit': {
        const limit = grant?.rateLimit ?? DEFAULT_RATE_LIMIT
        return sendError(res, fault.status ?? 403, 'API rate limit exceeded for installation ID 1.', RATE_LIMIT_DOCS, {
          'x-ratelimit-limit': String(limit),
          'x-ratelimit-remaining': '0',
          'x-ratelimit-reset': String(Math.floor(now() / 1000) + fault.resetAfterSeconds),
          'x-ratelimit-used': String(limit),
          'x-ratelimit-resource': 'core',
        })
      }
      case 'secondary-rate-limit': {
        const headers: Record<string, string> =
          fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) }
        return sendError(res, fault.status ?? 403, SECONDARY_RATE_LIMIT_MESSAGE, `${RATE_LIMIT_DOCS}#about-secondary-rate-limits`, headers)
      }
      case 'status':
        return sendError(res, fault.status, fault.message ?? `injected fault: HTTP ${fault.status}`, DOCS, fault.headers ?? {})
      case 'drop':
        res.socket?.destroy()
        return
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://emulator')
    const method = (req.method ?? 'GET').toUpperCase()
    const token = bearerToken(req.headers.authorization)
    let path = url.pathname
    const underPrefix = prefix === '' || path === prefix || path.startsWith(`${prefix}/`)
    if (prefix !== '' && underPrefix) path = path.slice(prefix.length) || '/'
    // Pagination links use /repositories/{id}; they name the same repository as /repos/{o}/{r}.
    const byId = /^\/repositories\/(\d+)(\/.*)?$/.exec(path)
    const byIdRepo = byId ? store.repoById(Number(byId[1])) : undefined
    if (byId && byIdRepo) path = `/repos/${byIdRepo.owner}/${byIdRepo.name}${byId[2] ?? ''}`

    const record: RecordedRequest = {
      method,
      rawPath: url.pathname,
      path,
      query: Object.fromEntries(url.searchParams),
      token,
    }
    requests.push(record)
    const target: MatchTarget = { method, path, token }
    res.on('finish', () => {
      record.status = res.statusCode
      gates.answered(target)
    })
    commonHeaders(res)

    const raw = await readBody(req)
    let body: Record<string, unknown> | undefined
    if (raw.length > 0 && method !== 'GET' && method !== 'DELETE') {
      try {
        const parsed: unknown = JSON.parse(raw.toString('utf8'))
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
        body = parsed as Record<string, unknown>
        record.body = parsed
      } catch {
        return sendError(res, 400, 'Problems parsing JSON')
      }
    }

    // The GHES prefix is part of the API's address: without it nothing is there.
    if (!underPrefix) return sendError(res, 404, 'Not Found')

    await gates.admit(target)

    const grant = token === undefined ? undefined : options.tokens[token]
    const fault = faults.take(target)
    if (fault !== undefined) {
      record.fault = fault.kind
      if (fault.kind === 'status' && fault.afterProcessing && grant !== undefined) {
        dispatch(ctx, { method, path, query: url.searchParams, grant, body }, discardingResponse())
      }
      return injectFault(res, fault, grant)
    }

    if (token === undefined) return sendError(res, 401, 'Requires authentication')
    if (grant === undefined) return sendError(res, 401, 'Bad credentials')
    if (!account(res, token, grant)) return
    dispatch(ctx, { method, path, query: url.searchParams, grant, body }, res)
  }

  const server = createServer({ keepAlive: true }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, 500, `emulator error: ${(error as Error).message}`)
      else res.destroy()
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  urls.api = `${origin}${prefix}`
  urls.server = (options.serverUrl ?? (prefix === '' ? 'https://github.com' : origin)).replace(/\/+$/, '')

  const repoOf = (owner: string, name: string) => {
    const repo = store.repo(owner, name)
    if (repo === undefined) throw new Error(`emulator: no repository ${owner}/${name}`)
    return repo
  }

  return {
    apiUrl: urls.api,
    serverUrl: urls.server,
    requests,
    faults,
    holdUntil: (match, until, options) => gates.holdUntil(match, until, options),
    barrier: (match, parties) => gates.barrier(match, parties),
    addRepo: (seed) => void store.addRepo(seed),
    addPull: (owner, name, pull) => store.addPull(repoOf(owner, name), pull),
    seedComments: (owner, name, number, comments) => {
      const repo = repoOf(owner, name)
      if (!store.hasIssue(repo, number)) throw new Error(`emulator: ${owner}/${name} has no issue or PR #${number}`)
      return comments.map((c) =>
        typeof c === 'string' ? store.createComment(repo, number, c, 'octocat') : store.createComment(repo, number, c.body, c.login),
      )
    },
    comments: (owner, name, number) => structuredClone(store.comments(repoOf(owner, name), number)),
    deleteComment: (owner, name, id) => store.deleteComment(repoOf(owner, name), id),
    deployments: (owner, name) => structuredClone(repoOf(owner, name).deployments),
    statuses: (owner, name, id) => structuredClone(store.statusesOf(repoOf(owner, name), id)),
    close: () =>
      new Promise<void>((resolve) => {
        gates.openAll()
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      }),
  }
}
