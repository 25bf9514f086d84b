// startContreeEmulator: a real HTTP/1.1 keep-alive server speaking ConTree v1 on 127.0.0.1, with
// request recording, auth checks, fault injection and an admin API under /_emulator.
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FaultRules, isStreamFault } from './faults.ts'
import { FileStore } from './file-store.ts'
import { readBody, sendEmpty, sendError, sendJson } from './http-io.ts'
import { ImageStore } from './image-store.ts'
import { OperationTable, TERMINAL } from './operations.ts'
import { dispatch, EVENTS_ROUTE, type AppContext } from './routes.ts'
import { recordedHeaders } from '../shared/recorded-headers.ts'
import { TEST_IMAGES, type TestImageName } from '../test-images.ts'
import { killGroup, Sandbox } from './sandbox.ts'
import type {
  ContreeEmulator,
  ContreeEmulatorOptions,
  FaultRule,
  RecordedRequest,
  StreamFaultAction,
} from './types.ts'

export async function startContreeEmulator(options: ContreeEmulatorOptions = {}): Promise<ContreeEmulator> {
  const ownDataDir = options.dataDir === undefined
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'contree-emulator-')))
  // No sandbox, no emulator: a command that could see the host's tools would prove nothing.
  let sandbox: Sandbox
  try {
    sandbox = await Sandbox.start(dataDir)
  } catch (error) {
    if (ownDataDir) await rm(dataDir, { recursive: true, force: true })
    throw error
  }
  if (!sandbox.procMounted) (options.log ?? console.warn)('contree emulator: this host does not allow a fresh /proc in the sandbox; commands run without /proc')

  const images = new ImageStore(dataDir, sandbox.fs)
  const faults = new FaultRules()
  const requests: RecordedRequest[] = []
  const tasks = new Set<Promise<void>>()
  const hanging = new Set<ServerResponse>()
  // Sockets whose next request is answered by destroying them (drop-after-response).
  const poisoned = new WeakSet<Socket>()
  let closing = false

  const app: AppContext = {
    gzip: options.gzip ?? true,
    images,
    files: new FileStore(dataDir),
    operations: new OperationTable(),
    dataDir,
    sandbox,
    stateDelayMs: options.stateDelayMs ?? 10,
    legacyCompletionFields: options.legacyCompletionFields ?? false,
    liveGroups: new Set(),
    keepaliveMs: options.keepaliveMs ?? 1000,
    tokenUuid: randomUUID(),
    track(task) {
      const tracked = task.catch(() => undefined).finally(() => tasks.delete(tracked))
      tasks.add(tracked)
    },
  }

  try {
    await images.seed({ tag: 'busybox:latest', image: options.defaultImage ?? 'base' })
  } catch (error) {
    await sandbox.fs.call('removeTree', { path: dataDir }).catch(() => undefined)
    await sandbox.close()
    throw error
  }

  const admin = async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    const route = `${req.method} ${pathname}`
    if (route === 'POST /_emulator/faults') {
      const raw = await readBody(req, () => undefined)
      let rules: unknown
      try {
        rules = JSON.parse(raw.toString('utf8'))
        faults.add(...((Array.isArray(rules) ? rules : [rules]) as FaultRule[]))
      } catch (error) {
        return sendError(app, res, 400, (error as Error).message)
      }
      return sendJson(app, res, 201, { pending: faults.pending() })
    }
    if (route === 'DELETE /_emulator/faults') {
      faults.clear()
      return sendEmpty(res, 204)
    }
    if (route === 'GET /_emulator/faults') return sendJson(app, res, 200, { pending: faults.pending(), applied: faults.applied() })
    if (route === 'GET /_emulator/requests') return sendJson(app, res, 200, requests)
    if (route === 'POST /_emulator/reset') {
      emulator.reset()
      return sendEmpty(res, 204)
    }
    if (route === 'GET /_emulator/operations') return sendJson(app, res, 200, app.operations.views())
    if (route === 'GET /_emulator/images') return sendJson(app, res, 200, images.views())
    if (route === 'POST /_emulator/images') {
      // Seeds a catalogue image (test-images.ts) for other processes: {"image": "node", "tag": "node:22"}.
      let body: { image?: unknown; tag?: unknown }
      try {
        body = JSON.parse((await readBody(req, () => undefined)).toString('utf8')) as typeof body
      } catch {
        return sendError(app, res, 400, 'body must be JSON: {"image": <catalogue name>, "tag"?: string}')
      }
      if (typeof body.image !== 'string' || !Object.hasOwn(TEST_IMAGES, body.image)) {
        return sendError(app, res, 400, `image must be one of ${Object.keys(TEST_IMAGES).join(', ')}`)
      }
      if (body.tag !== undefined && typeof body.tag !== 'string') return sendError(app, res, 400, 'tag must be a string')
      if (body.tag && images.findByTag(body.tag)) return sendError(app, res, 409, `tag ${body.tag} is already held by an image`)
      const record = await images.seed({ image: body.image as TestImageName, ...(body.tag ? { tag: body.tag } : {}) })
      return sendJson(app, res, 201, { uuid: record.uuid, tag: record.tag })
    }
    sendError(app, res, 404, `no route for ${req.method} ${pathname}`)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://emulator')
    const method = req.method ?? 'GET'
    res.setHeader('X-Request-ID', randomUUID())
    if (url.pathname.startsWith('/_emulator/')) return admin(req, res, url.pathname)

    const record: RecordedRequest = {
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: recordedHeaders(req),
      bodyBytes: 0,
      at: Date.now(),
    }
    const requestIndex = requests.push(record) - 1
    const socket = req.socket
    if (poisoned.has(socket)) {
      record.fault = 'drop-after-response'
      socket.destroy()
      return
    }

    const isEvents = method === 'GET' && EVENTS_ROUTE.test(url.pathname)
    const fault = faults.take(method, url.pathname, isEvents, requestIndex)
    if (fault) record.fault = fault.kind
    let bodyPromise: Promise<Buffer> | null = null
    const body = () => (bodyPromise ??= readBody(req, (n) => (record.bodyBytes = n)))

    switch (fault?.kind) {
      case 'status': {
        await body()
        const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'Retry-After': fault.retryAfter } : {}
        return sendJson(app, res, fault.status, fault.body ?? { error: `injected fault: status ${fault.status}`, status: fault.status }, headers)
      }
      case 'drop-before-response':
        socket.destroy()
        return
      case 'hang':
        hanging.add(res)
        res.on('close', () => hanging.delete(res))
        return
      case 'drop-after-response':
        res.on('finish', () => poisoned.add(socket))
        break
      case 'events-unavailable':
        await body()
        return sendError(app, res, 404, `no route for ${method} ${url.pathname}`)
      default:
        break
    }

    if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) {
      await body()
      return sendError(app, res, 401, 'invalid or missing bearer token')
    }
    if (options.project !== undefined && req.headers.project !== options.project) {
      await body()
      return sendError(app, res, 403, 'project header missing or not permitted for this token')
    }

    await dispatch(app, {
      req,
      res,
      method,
      pathname: url.pathname,
      query: url.searchParams,
      body,
      streamFault: fault && isStreamFault(fault) ? (fault as StreamFaultAction) : undefined,
    })
    // Unread request bodies (e.g. a GET with a body) must not stall the keep-alive socket.
    if (!req.complete) req.resume()
  }

  const server = createServer({ keepAlive: true }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(app, res, 500, `emulator error: ${(error as Error).message}`)
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo

  const emulator: ContreeEmulator = {
    url: `http://127.0.0.1:${port}`,
    faults,
    requests,
    sandboxMode: sandbox.mode,
    operations: () => app.operations.views(),
    images: () => images.views(),
    async seedImage(opts) {
      return (await images.seed(opts)).uuid
    },
    forgetFile: (sha256) => app.files.forget(sha256),
    reset() {
      requests.length = 0
      faults.clear()
    },
    async close() {
      if (closing) return
      closing = true
      for (const op of app.operations.all()) {
        if (TERMINAL.has(op.status)) continue
        op.cancelRequested = true
        op.cancel?.()
      }
      for (const pid of app.liveGroups) killGroup(pid)
      for (const res of hanging) res.socket?.destroy()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
      // Bounded wait for runners to wind down; the timer must not keep the process alive afterwards.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.allSettled([...tasks]), new Promise((resolve) => (timer = setTimeout(resolve, 5000)))])
      clearTimeout(timer)
      // Trees hold files of the sandbox's users, which only the helper may remove.
      if (ownDataDir) await sandbox.fs.call('removeTree', { path: dataDir }).catch(() => undefined)
      await sandbox.close()
      if (ownDataDir) await rm(dataDir, { recursive: true, force: true })
    },
  }
  return emulator
}

