// startTogetherEmulator: three real HTTP/1.1 servers on 127.0.0.1 — the management API, the builder (a
// different origin, as the real one is) and the agents of all sandboxes — sharing request recording, fault
// injection, bearer auth and an admin API under /_emulator on the management server.
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Sandbox, SandboxUnavailableError } from '../contree/sandbox.ts'
import { recordedHeaders } from '../shared/recorded-headers.ts'
import { AGENT_ROUTES } from './agent-routes.ts'
import { API_ROUTES } from './api-routes.ts'
import type { App, ResolvedOptions } from './app.ts'
import { BUILDER_ROUTES } from './builder-routes.ts'
import { BuildTable } from './builds.ts'
import { FaultRules, type FaultTarget } from './faults.ts'
import { drain, errorBody, hasBearer, HttpError, readBody, sendReply, wantsGzip, type Reply } from './http-io.ts'
import { namespaceOf } from './image-ref.ts'
import { ImageStore } from './image-store.ts'
import { LayerCache } from './layer-cache.ts'
import { findRoute, type Route } from './routing.ts'
import { TOGETHER_HELPER, togetherFs } from './rootfs/client.ts'
import { createRootRunner, type RootRunner } from './run-in-root.ts'
import { SandboxTable } from './sandboxes.ts'
import { SnapshotTable } from './snapshots.ts'
import type { BuildState, EmulatorCounts, FaultRule, RecordedRequest, SandboxStatus, Surface, TogetherEmulator, TogetherEmulatorOptions } from './types.ts'

const ROUTES: Record<Surface, ReadonlyArray<Route<App>>> = { api: API_ROUTES, builder: BUILDER_ROUTES, agent: AGENT_ROUTES }
const JSON_BODY_LIMIT = 1024 * 1024
const AGENT_PREFIX = /^\/agents\/([^/]+)(?:\/|$)/
const BUILD_STATES: BuildState[] = ['running', 'succeeded', 'failed', 'cancelled']
const SANDBOX_STATUSES: SandboxStatus[] = ['starting', 'running', 'terminating', 'terminated', 'failed_to_start', 'recovering', 'unrecovered']

function resolveOptions(options: TogetherEmulatorOptions): ResolvedOptions {
  return {
    apiKey: options.apiKey ?? 'test-api-key',
    projectId: options.projectId ?? 'proj_emulator',
    startDelayMs: options.startDelayMs ?? 20,
    terminateDelayMs: options.terminateDelayMs ?? 10,
    waitTimeoutMs: options.waitTimeoutMs ?? 10_000,
    keepaliveMs: options.keepaliveMs ?? 1000,
    gzip: options.gzip ?? true,
    defaultExecUser: options.defaultExecUser ?? '1000:1000',
    workspaceDir: options.workspaceDir ?? '/',
    registryHost: options.registryHost ?? 'registry.together.emulator',
  }
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

export async function startTogetherEmulator(options: TogetherEmulatorOptions = {}): Promise<TogetherEmulator> {
  const resolved = resolveOptions(options)
  const ownDataDir = options.dataDir === undefined
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'together-emulator-')))
  // No sandbox, no emulator: a command that could see the host's tools would prove nothing.
  let sandbox: Sandbox
  try {
    sandbox = await Sandbox.start(dataDir, TOGETHER_HELPER)
  } catch (error) {
    if (ownDataDir) await rm(dataDir, { recursive: true, force: true })
    if (error instanceof SandboxUnavailableError) throw new SandboxUnavailableError(`together emulator (it runs commands in the ConTree emulator's sandbox): ${error.message}`)
    throw error
  }
  if (!sandbox.procMounted) (options.log ?? console.warn)('together emulator: this host does not allow a fresh /proc in the sandbox; commands run without /proc')
  const fs = togetherFs(sandbox)
  // Trees hold files of the images' users, which only the helper may remove (user-namespace mode).
  const removeData = async () => {
    if (ownDataDir) await fs.call('removeTree', { path: dataDir }).catch(() => undefined)
    await sandbox.close()
  }
  let runner: RootRunner
  const images = new ImageStore(dataDir, fs)
  try {
    runner = await createRootRunner(sandbox, fs, dataDir)
    await images.seed('busybox:latest', { image: options.defaultImage ?? 'base' })
  } catch (error) {
    await removeData()
    throw error
  }

  const faults = new FaultRules()
  const requests: RecordedRequest[] = []
  const tasks = new Set<Promise<unknown>>()
  let closing = false

  const servers: Record<Surface, Server> = {
    api: createServer({ keepAlive: true }),
    builder: createServer({ keepAlive: true }),
    agent: createServer({ keepAlive: true }),
  }
  const [apiUrl, builderUrl, agentsUrl] = await Promise.all([listen(servers.api), listen(servers.builder), listen(servers.agent)])

  const app = {
    options: resolved,
    dataDir,
    images,
    fs,
    runner,
    cache: new LayerCache(dataDir, fs),
    builds: new BuildTable(),
    snapshots: new SnapshotTable(resolved.projectId),
    counters: { runStepsExecuted: 0, stepsCached: 0 },
    repositoryPrefix: `${resolved.registryHost}/${namespaceOf(resolved.projectId)}`,
    track(task: Promise<unknown>) {
      const tracked = task.catch(() => undefined).finally(() => tasks.delete(tracked))
      tasks.add(tracked)
    },
  } as Omit<App, 'sandboxes'> as App
  // The sandbox table reaches images, snapshots and the runner through the app it belongs to.
  app.sandboxes = new SandboxTable(app, agentsUrl as string)

  /** Who may call: the API key on the API and the builder; the sandbox's own token on its agent. */
  const authorize = (surface: Surface, req: IncomingMessage, pathname: string): HttpError | null => {
    if (surface !== 'agent') return hasBearer(req, resolved.apiKey) ? null : new HttpError(401, 'missing or invalid API key')
    const id = AGENT_PREFIX.exec(pathname)?.[1]
    const sandbox = id === undefined ? undefined : app.sandboxes.get(id)
    if (!sandbox) return new HttpError(404, `no sandbox agent at ${pathname}`)
    if (sandbox.status !== 'running' || sandbox.agentToken === null) return new HttpError(502, `sandbox ${sandbox.id} is not running (${sandbox.status})`)
    return hasBearer(req, sandbox.agentToken) ? null : new HttpError(401, 'missing or invalid agent token')
  }

  const counts = (): EmulatorCounts => {
    const builds = app.builds.all()
    const byState = Object.fromEntries(BUILD_STATES.map((state) => [state, builds.filter((b) => b.state === state).length])) as Record<BuildState, number>
    const sandboxes = app.sandboxes.all()
    const snapshots = app.snapshots.all()
    return {
      builds: { submitted: app.builds.submitted, ...byState },
      runStepsExecuted: app.counters.runStepsExecuted,
      stepsCached: app.counters.stepsCached,
      snapshots: { active: snapshots.filter((s) => s.retiredAt === null).length, retired: snapshots.filter((s) => s.retiredAt !== null).length },
      sandboxes: Object.fromEntries(SANDBOX_STATUSES.map((status) => [status, sandboxes.filter((s) => s.status === status).length])) as Record<SandboxStatus, number>,
      execsRunning: sandboxes.reduce((n, s) => n + [...s.execs.values()].filter((exec) => exec.status === 'RUNNING').length, 0),
      processesAlive: runner.processesAlive(),
    }
  }

  const admin = async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    const route = `${req.method} ${pathname}`
    const reply = (value: Reply) => sendReply(res, value, false)
    if (route === 'POST /_emulator/faults') {
      try {
        const rules: unknown = JSON.parse((await readBody(req, JSON_BODY_LIMIT, () => undefined)).toString('utf8'))
        faults.add(...((Array.isArray(rules) ? rules : [rules]) as FaultRule[]))
      } catch (error) {
        return reply({ status: 400, body: { error: (error as Error).message } })
      }
      return reply({ status: 201, body: { pending: faults.pending() } })
    }
    if (route === 'DELETE /_emulator/faults') {
      faults.clear()
      return reply({ status: 204 })
    }
    if (route === 'GET /_emulator/faults') return reply({ status: 200, body: { pending: faults.pending(), applied: faults.applied() } })
    if (route === 'GET /_emulator/requests') return reply({ status: 200, body: requests })
    if (route === 'POST /_emulator/reset') {
      emulator.reset()
      return reply({ status: 204 })
    }
    if (route === 'GET /_emulator/counts') return reply({ status: 200, body: counts() })
    if (route === 'GET /_emulator/builds') return reply({ status: 200, body: app.builds.views() })
    if (route === 'GET /_emulator/snapshots') return reply({ status: 200, body: app.snapshots.views() })
    if (route === 'GET /_emulator/sandboxes') return reply({ status: 200, body: app.sandboxes.views() })
    reply({ status: 404, body: { error: `no route for ${route}` } })
  }

  const handle = async (surface: Surface, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://emulator')
    const method = req.method ?? 'GET'
    res.setHeader('X-Request-ID', randomUUID())
    if (surface === 'api' && url.pathname.startsWith('/_emulator/')) return admin(req, res, url.pathname)

    const record: RecordedRequest = {
      server: surface,
      method,
      path: url.pathname,
      query: [...url.searchParams],
      headers: recordedHeaders(req),
      bodyBytes: 0,
      at: Date.now(),
    }
    const requestIndex = requests.push(record) - 1
    res.on('finish', () => {
      record.status = res.statusCode
    })
    const countBytes = (n: number) => {
      record.bodyBytes += n
    }
    const gzip = wantsGzip(resolved.gzip, req)
    const match = findRoute(ROUTES[surface], method, url.pathname)
    const route = match && 'route' in match ? match.route : undefined
    const target: FaultTarget = {
      server: surface,
      method,
      path: url.pathname,
      isStream: route?.stream !== undefined,
      isBuildLog: route?.stream === 'build-log',
      isSandboxCreate: surface === 'api' && method === 'POST' && url.pathname === '/v1/sandboxes',
    }
    const fault = faults.take(target, requestIndex)
    if (fault) record.fault = fault.kind
    const answer = (error: HttpError, headers: Record<string, string> = {}) =>
      sendReply(res, { status: error.status, body: errorBody(surface, error), headers }, gzip)

    switch (fault?.kind) {
      case 'status': {
        await drain(req, countBytes)
        const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'Retry-After': fault.retryAfter } : {}
        if (fault.body !== undefined) return sendReply(res, { status: fault.status, body: fault.body, headers }, gzip)
        return answer(new HttpError(fault.status, `injected fault: status ${fault.status}`), headers)
      }
      case 'drop-before-response':
        req.socket.destroy()
        return
      case 'hang':
        return
      default:
        break
    }

    const denied = authorize(surface, req, url.pathname)
    if (denied) {
      await drain(req, countBytes)
      return answer(denied)
    }
    if (!match || !route) {
      await drain(req, countBytes)
      return answer(new HttpError(match ? 405 : 404, `no route for ${method} ${url.pathname}`))
    }

    let bodyPromise: Promise<Buffer> | null = null
    try {
      const reply = await route.handler({
        app,
        req,
        res,
        method,
        pathname: url.pathname,
        query: url.searchParams,
        params: (match as { params: string[] }).params,
        gzip,
        record,
        streamFault: route.stream ? fault : undefined,
        startFault: target.isSandboxCreate ? fault : undefined,
        body: (limit = JSON_BODY_LIMIT) => (bodyPromise ??= readBody(req, limit, (n) => (record.bodyBytes = n))),
      })
      if (!reply) return
      // A body the handler did not read must not stall the keep-alive connection.
      await drain(req, countBytes)
      if (fault?.kind === 'status-after') {
        const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'Retry-After': fault.retryAfter } : {}
        if (fault.body !== undefined) return sendReply(res, { status: fault.status, body: fault.body, headers }, gzip)
        return answer(new HttpError(fault.status, `injected fault: status ${fault.status} (the request was performed)`), headers)
      }
      sendReply(res, reply, gzip)
    } catch (error) {
      if (res.headersSent) {
        res.destroy()
        return
      }
      await drain(req, countBytes)
      answer(error instanceof HttpError ? error : new HttpError(500, `emulator error: ${(error as Error).message}`))
    }
  }

  for (const surface of ['api', 'builder', 'agent'] as const) {
    const server = servers[surface]
    server.keepAliveTimeout = 30_000
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (closing) {
        res.destroy()
        return
      }
      handle(surface, req, res).catch((error: unknown) => {
        if (!res.headersSent) sendReply(res, { status: 500, body: { error: `emulator error: ${(error as Error).message}` } }, false)
        else res.destroy()
      })
    })
  }

  const emulator: TogetherEmulator = {
    apiUrl,
    builderUrl,
    agentsUrl,
    apiKey: resolved.apiKey,
    sandboxMode: sandbox.mode,
    faults,
    requests,
    builds: () => app.builds.views(),
    snapshots: () => app.snapshots.views(),
    sandboxes: () => app.sandboxes.views(),
    counts,
    async seedImage(opts) {
      const { ref, ...seed } = opts
      return (await images.seed(ref, seed)).ref
    },
    reset() {
      requests.length = 0
      faults.clear()
    },
    async close() {
      if (closing) return
      closing = true
      for (const build of app.builds.all()) app.builds.stop(build, { kind: 'cancelled' })
      await app.sandboxes.shutdown()
      runner.killAll()
      await Promise.all(
        Object.values(servers).map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve())
              // Streams, hung requests and idle keep-alive sockets all go.
              server.closeAllConnections()
            }),
        ),
      )
      // Bounded wait for builds and lifecycles to wind down; the timer must not keep the process alive.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.allSettled([...tasks]), new Promise((resolve) => (timer = setTimeout(resolve, 5000)))])
      clearTimeout(timer)
      app.snapshots.stopTimers()
      runner.killAll()
      await removeData()
    },
  }
  return emulator
}
