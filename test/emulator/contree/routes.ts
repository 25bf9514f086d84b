// The /v1 route table (protocol §2). Handlers get the parsed request and answer through http-io.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { FileStore } from './file-store.ts'
import { toWireFile } from './file-store.ts'
import { HttpError, parseJsonBody, sendBuffered, sendEmpty, sendError, sendJson, streamFile, type ResponseContext } from './http-io.ts'
import { TagConflictError, toWireImage } from './image-store.ts'
import { longListingLine } from './long-listing.ts'
import { runImport } from './import-runner.ts'
import { runInstance, type RunnerContext } from './instance-runner.ts'
import { TERMINAL, toWireOperation, toWireSummary, type OperationTable } from './operations.ts'
import { parseSpawnRequest } from './spawn-request.ts'
import { streamEvents } from './sse-stream.ts'
import type { OperationKind, OperationStatus, StreamFaultAction } from './types.ts'

export interface AppContext extends ResponseContext, RunnerContext {
  files: FileStore
  operations: OperationTable
  keepaliveMs: number
  tokenUuid: string
  /** Background work (running operations), awaited by close(). */
  track(task: Promise<void>): void
}

export interface RouteRequest {
  req: IncomingMessage
  res: ServerResponse
  method: string
  pathname: string
  query: URLSearchParams
  params: string[]
  /** Reads the whole body (chunked or not). */
  body(): Promise<Buffer>
  streamFault: StreamFaultAction | undefined
}

type Handler = (app: AppContext, request: RouteRequest) => Promise<void> | void

interface Route {
  method: string
  pattern: RegExp
  handler: Handler
}

const SEGMENT = '([^/]+)'
const STATUSES = new Set<OperationStatus>(['PENDING', 'ASSIGNED', 'EXECUTING', 'SUCCESS', 'FAILED', 'CANCELLED'])

export const EVENTS_ROUTE = /^\/v1\/operations\/[^/]+\/events$/

function page<T>(items: T[], query: URLSearchParams): T[] {
  let limit = 100
  const rawLimit = query.get('limit')
  if (rawLimit !== null && rawLimit !== '') {
    limit = Number(rawLimit)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new HttpError(400, 'limit must be between 1 and 1000')
  }
  let offset = 0
  const rawOffset = query.get('offset')
  if (rawOffset !== null && rawOffset !== '') {
    offset = Number(rawOffset)
    if (!Number.isInteger(offset) || offset < 0) throw new HttpError(400, 'offset must be a non-negative integer')
  }
  return items.slice(offset, offset + limit)
}

function flag(query: URLSearchParams, name: string): boolean {
  const value = query.get(name)
  return value === '1' || value === 'true'
}

function operationOr404(app: AppContext, id: string) {
  const op = app.operations.get(id)
  if (!op) throw new HttpError(404, `operation ${id} not found`)
  return op
}

function imageOr404(app: AppContext, uuid: string) {
  const image = app.images.get(uuid)
  if (!image) throw new HttpError(404, `image ${uuid} not found`)
  return image
}

const whoami: Handler = (app, { res }) => {
  const stat: Record<string, number> = {}
  for (const op of app.operations.all()) stat[op.status] = (stat[op.status] ?? 0) + 1
  sendJson(app, res, 200, {
    token_uuid: app.tokenUuid,
    token_expiration: null,
    permissions: { spawn: true, spawn_disposable: true, list: true, import: true, cancel: true, set_image_tag: true },
    limits: { instance_max_timeout: 3600 },
    operations_stat: stat,
  })
}

const listImages: Handler = (app, { res, query }) => {
  const images = app.images.list({
    tag: query.get('tag') ?? undefined,
    uuid: query.get('uuid') ?? undefined,
    tagged: flag(query, 'tagged'),
  })
  sendJson(app, res, 200, { images: page(images, query).map(toWireImage) })
}

const getImage: Handler = (app, { res, params }) => {
  sendJson(app, res, 200, toWireImage(imageOr404(app, params[0] as string)))
}

const setImageTag: Handler = async (app, request) => {
  const image = imageOr404(app, request.params[0] as string)
  const body = parseJsonBody(await request.body())
  if (typeof body.tag !== 'string' || body.tag === '') throw new HttpError(400, 'tag is required')
  for (const key of Object.keys(body)) if (key !== 'tag') throw new HttpError(400, `unknown field "${key}"`)
  try {
    sendJson(app, request.res, 200, toWireImage(app.images.setTag(image.uuid, body.tag)))
  } catch (error) {
    if (error instanceof TagConflictError) throw new HttpError(409, error.message)
    throw error
  }
}

const deleteImageTag: Handler = (app, { res, params, query }) => {
  const image = imageOr404(app, params[0] as string)
  const tag = query.get('tag')
  if (!tag || image.tag === tag) image.tag = null
  sendEmpty(res, 204)
}

const importImage: Handler = async (app, request) => {
  const body = parseJsonBody(await request.body())
  const registry = body.registry as { url?: unknown; credentials?: { username?: unknown; password?: unknown } } | undefined
  if (!registry || typeof registry.url !== 'string' || !registry.url) throw new HttpError(400, 'registry.url is required')
  const tag = typeof body.tag === 'string' && body.tag !== '' ? body.tag : null
  const timeout = typeof body.timeout === 'number' && body.timeout > 0 ? body.timeout : 300
  const credentials = registry.credentials
    ? {
        username: typeof registry.credentials.username === 'string' ? registry.credentials.username : undefined,
        password: typeof registry.credentials.password === 'string' ? registry.credentials.password : undefined,
      }
    : undefined
  const op = app.operations.create('image_import', null, {
    registry: {
      url: registry.url,
      ...(credentials ? { credentials: { username: credentials.username ?? null, password: '<MASKED>' } } : {}),
    },
    tag,
    timeout,
  })
  app.track(runImport(app, op, { url: registry.url, credentials, tag, timeout }))
  sendJson(app, request.res, 201, { uuid: op.uuid }, { Location: `/v1/operations/${op.uuid}` })
}

const uploadFile: Handler = async (app, request) => {
  const { record } = await app.files.put(await request.body())
  sendJson(app, request.res, 201, { uuid: record.uuid, sha256: record.sha256, size: record.size })
}

/** GET /v1/files lists; the legacy `?sha256=` form returns one record. */
const listFiles: Handler = (app, { res, query }) => {
  const sha256 = query.get('sha256')
  if (sha256 !== null) {
    const file = app.files.bySha256(sha256)
    if (!file) throw new HttpError(404, `file ${sha256} not found`)
    return sendJson(app, res, 200, { uuid: file.uuid, sha256: file.sha256, size: file.size })
  }
  sendJson(app, res, 200, { files: page(app.files.list(), query).map(toWireFile) })
}

/** Legacy HEAD /v1/files?uuid=|sha256=. */
const headFiles: Handler = (app, { res, query }) => {
  const uuid = query.get('uuid')
  const sha256 = query.get('sha256')
  const file = uuid !== null ? app.files.byId(uuid) : sha256 !== null ? app.files.bySha256(sha256) : undefined
  sendEmpty(res, file ? 200 : 404)
}

const getFile: Handler = (app, { res, params, method }) => {
  const file = app.files.bySha256(params[0] as string)
  if (method === 'HEAD') return sendEmpty(res, file ? 200 : 404)
  if (!file) throw new HttpError(404, `file ${params[0]} not found`)
  sendJson(app, res, 200, toWireFile(file))
}

const spawnInstance: Handler = async (app, request) => {
  const body = parseJsonBody(await request.body())
  if (typeof body.image !== 'string' || body.image === '') throw new HttpError(400, 'image is required')
  const spec = parseSpawnRequest(body, app.files)
  const image = app.images.resolveReference(body.image)
  if (!image) throw new HttpError(404, `image ${body.image} not found`)
  const op = app.operations.create('instance', image.uuid, { ...body })
  app.track(runInstance(app, op, spec, image))
  sendJson(app, request.res, 201, { ...body, uuid: op.uuid, status: op.status }, {
    Location: `/v1/operations/${op.uuid}`,
  })
}

const listOperations: Handler = (app, { res, query }) => {
  const status = query.get('status')
  if (status && !STATUSES.has(status as OperationStatus)) throw new HttpError(400, `unknown status ${status}`)
  const kind = query.get('kind') as OperationKind | null
  const ops = app.operations
    .all()
    .filter((op) => !status || op.status === status)
    .filter((op) => !kind || op.kind === kind)
    .reverse()
  sendJson(app, res, 200, page(ops, query).map(toWireSummary))
}

const getOperation: Handler = (app, { res, params }) => {
  const op = operationOr404(app, params[0] as string)
  // The real stub sends Retry-After on a successful GET; clients must ignore it.
  sendJson(app, res, 200, toWireOperation(op), TERMINAL.has(op.status) ? {} : { 'Retry-After': '1' })
}

const cancelOperation: Handler = (app, { res, params }) => {
  const op = operationOr404(app, params[0] as string)
  if (TERMINAL.has(op.status) || op.log.finished) {
    return sendJson(app, res, 409, { error: 'operation is not cancellable', status: 409 })
  }
  op.cancelRequested = true
  op.cancel?.()
  sendEmpty(res, 202)
}

const operationEvents: Handler = async (app, request) => {
  const op = operationOr404(app, request.params[0] as string)
  const header = request.req.headers['last-event-id']
  const since = request.query.get('since')
  const cursor = typeof header === 'string' && header.trim() !== '' ? header : since
  const afterId = cursor !== null && /^-?\d+$/.test(cursor.trim()) ? Number(cursor.trim()) : -1
  const spidRaw = request.query.get('spid')
  const spid = spidRaw !== null && /^\d+$/.test(spidRaw) ? Number(spidRaw) : null
  await streamEvents(request.res, op, {
    follow: flag(request.query, 'follow'),
    afterId,
    spid,
    keepaliveMs: app.keepaliveMs,
    gzip: app.gzip,
    fault: request.streamFault,
  })
}

const inspectByTag: Handler = (app, { res, query }) => {
  const tag = query.get('tag')
  if (!tag) throw new HttpError(400, 'tag is required')
  const image = app.images.findByTag(tag)
  if (!image) throw new HttpError(404, `no image tagged ${tag}`)
  // Relative to /v1/inspect/, exactly as the live server sends it.
  sendEmpty(res, 302, { Location: `${image.uuid}/` })
}

const inspectImage: Handler = (app, { res, params }) => {
  sendJson(app, res, 200, toWireImage(imageOr404(app, params[0] as string)))
}

function inspectPath(query: URLSearchParams): string {
  const path = query.get('path')
  if (!path || !path.startsWith('/')) throw new HttpError(422, 'path must be absolute')
  return path
}

/**
 * GET/HEAD /v1/inspect/{uuid}/download?path= — raw bytes of one regular file of the image, read as
 * root of the sandbox (owner-only files too); symlinks resolve inside the image.
 */
const inspectDownload: Handler = async (app, { res, params, query, method }) => {
  const image = imageOr404(app, params[0] as string)
  const path = inspectPath(query)
  const read = await app.sandbox.fs.call('readImageFile', { root: image.dir, path })
  switch (read.kind) {
    case 'file':
      return sendBuffered(app, res, 200, Buffer.from(read.base64, 'base64'), { 'Content-Type': 'application/octet-stream' })
    case 'directory':
      throw new HttpError(422, `${path} is a directory`)
    case 'special':
      throw new HttpError(422, `${path} is not a regular file`)
    case 'missing':
      if (method === 'HEAD') return sendEmpty(res, 404)
      throw new HttpError(404, 'file not found')
  }
}

/** GET/HEAD /v1/inspect/{uuid}/archive?path= — a PAX tar of the path (chunked, gzip'ed like every stream). */
const inspectArchive: Handler = async (app, { res, params, query, method }) => {
  const image = imageOr404(app, params[0] as string)
  const path = inspectPath(query)
  const outFile = join(app.dataDir, 'tmp', `archive-${randomUUID()}.tar`)
  try {
    const written = await app.sandbox.fs.call('archiveImagePath', { root: image.dir, path, outFile })
    if (written === 'missing') {
      if (method === 'HEAD') return sendEmpty(res, 404)
      throw new HttpError(404, 'path not found')
    }
    if (method === 'HEAD') return sendEmpty(res, 200, { 'Content-Type': 'application/x-tar' })
    await streamFile(app, res, outFile, 'application/x-tar')
  } finally {
    await rm(outFile, { force: true })
  }
}

/** GET /v1/inspect/{uuid}/list?path= — DirectoryList, or `ls -l`-like text with text=1. */
const inspectList: Handler = async (app, { res, params, query }) => {
  const image = imageOr404(app, params[0] as string)
  const path = inspectPath(query)
  const listing = await app.sandbox.fs.call('listImageDirectory', { root: image.dir, path })
  if (listing.kind === 'missing') throw new HttpError(404, 'path not found')
  if (listing.kind === 'not-a-directory') throw new HttpError(422, `${path} is not a directory`)
  if (flag(query, 'text')) {
    const text = listing.entries.map(longListingLine).join('')
    return sendBuffered(app, res, 200, Buffer.from(text), { 'Content-Type': 'text/plain; charset=utf-8' })
  }
  sendJson(app, res, 200, {
    path: listing.path,
    files: listing.entries.map((entry) => ({
      size: entry.size,
      path: entry.name,
      owner: entry.owner ?? entry.uid,
      group: entry.group ?? entry.gid,
      uid: entry.uid,
      gid: entry.gid,
      mode: entry.mode,
      mtime: entry.mtime,
      nlink: entry.nlink,
      is_dir: entry.isDir,
      is_regular: entry.isRegular,
      is_symlink: entry.isSymlink,
      is_socket: entry.isSocket,
      is_fifo: entry.isFifo,
      symlink_to: entry.symlinkTo,
    })),
  })
}

const ROUTES: Route[] = [
  { method: 'GET', pattern: /^\/v1\/whoami$/, handler: whoami },
  { method: 'GET', pattern: /^\/v1\/images$/, handler: listImages },
  { method: 'POST', pattern: /^\/v1\/images\/import$/, handler: importImage },
  { method: 'GET', pattern: new RegExp(`^/v1/images/${SEGMENT}$`), handler: getImage },
  { method: 'PATCH', pattern: new RegExp(`^/v1/images/${SEGMENT}/tag$`), handler: setImageTag },
  { method: 'DELETE', pattern: new RegExp(`^/v1/images/${SEGMENT}/tag$`), handler: deleteImageTag },
  { method: 'POST', pattern: /^\/v1\/files$/, handler: uploadFile },
  { method: 'GET', pattern: /^\/v1\/files$/, handler: listFiles },
  { method: 'HEAD', pattern: /^\/v1\/files$/, handler: headFiles },
  { method: 'GET', pattern: new RegExp(`^/v1/files/${SEGMENT}$`), handler: getFile },
  { method: 'HEAD', pattern: new RegExp(`^/v1/files/${SEGMENT}$`), handler: getFile },
  { method: 'POST', pattern: /^\/v1\/instances$/, handler: spawnInstance },
  { method: 'GET', pattern: /^\/v1\/operations$/, handler: listOperations },
  { method: 'GET', pattern: new RegExp(`^/v1/operations/${SEGMENT}$`), handler: getOperation },
  { method: 'GET', pattern: new RegExp(`^/v1/operations/${SEGMENT}/import$`), handler: getOperation },
  { method: 'DELETE', pattern: new RegExp(`^/v1/operations/${SEGMENT}$`), handler: cancelOperation },
  { method: 'GET', pattern: new RegExp(`^/v1/operations/${SEGMENT}/events$`), handler: operationEvents },
  { method: 'GET', pattern: /^\/v1\/inspect\/$/, handler: inspectByTag },
  { method: 'GET', pattern: new RegExp(`^/v1/inspect/${SEGMENT}/$`), handler: inspectImage },
  { method: 'GET', pattern: new RegExp(`^/v1/inspect/${SEGMENT}/download$`), handler: inspectDownload },
  { method: 'HEAD', pattern: new RegExp(`^/v1/inspect/${SEGMENT}/download$`), handler: inspectDownload },
  { method: 'GET', pattern: new RegExp(`^/v1/inspect/${SEGMENT}/archive$`), handler: inspectArchive },
  { method: 'HEAD', pattern: new RegExp(`^/v1/inspect/${SEGMENT}/archive$`), handler: inspectArchive },
  { method: 'GET', pattern: new RegExp(`^/v1/inspect/${SEGMENT}/list$`), handler: inspectList },
]

export async function dispatch(app: AppContext, request: Omit<RouteRequest, 'params'>): Promise<void> {
  const { res, method, pathname } = request
  try {
    for (const route of ROUTES) {
      if (route.method !== method) continue
      const match = route.pattern.exec(pathname)
      if (!match) continue
      const params = match.slice(1).map((segment) => decodeURIComponent(segment))
      await route.handler(app, { ...request, params })
      return
    }
    // The protocol's own wording for an unknown route.
    sendError(app, res, 404, `no route for ${method} ${pathname}`)
  } catch (error) {
    if (res.headersSent) {
      res.destroy()
      return
    }
    if (error instanceof HttpError) return sendError(app, res, error.status, error.message)
    sendError(app, res, 500, `emulator error: ${(error as Error).message}`)
  }
}
