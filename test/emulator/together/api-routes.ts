// The management API, "Bartender" (api-openapi.json, servers `/v1`): snapshots, aliases and sandboxes.
import type { App } from './app.ts'
import { badRequest, HttpError, parseJsonObject, type Reply } from './http-io.ts'
import { parseReference } from './image-ref.ts'
import type { Route, RouteContext } from './routing.ts'
import type { SandboxRecord, StartFault, TerminationSnapshot } from './sandboxes.ts'
import type { SnapshotRecord } from './snapshots.ts'
import type { SandboxStatus } from './types.ts'
import {
  batchIds,
  deepObjectTags,
  optionalInteger,
  optionalNumber,
  optionalObject,
  optionalString,
  optionalStringArray,
  optionalTags,
  queryBoolean,
  queryInteger,
  rejectUnknownFields,
  rejectUnknownQuery,
  requiredString,
  requireUuid,
} from './validate.ts'

type Ctx = RouteContext<App>

const STATUSES: ReadonlySet<string> = new Set<SandboxStatus>(['starting', 'running', 'terminating', 'terminated', 'failed_to_start', 'recovering', 'unrecovered'])
const MAX_TTL = 2 ** 31 - 1

async function jsonBody(ctx: Ctx, optional = false): Promise<Record<string, unknown> | undefined> {
  return parseJsonObject(ctx.req, await ctx.body(), optional)
}

function ok(body: unknown, status = 200): Reply {
  return { status, body }
}

/** Cursor pagination: the page after `cursor` (an id of `ordered`), `limit` items that pass `keep`. */
function paginate<T extends { id: string }>(ordered: T[], keep: (item: T) => boolean, query: URLSearchParams): { data: T[]; next_cursor: string | null } {
  const limit = queryInteger(query, 'limit', 1, 100) ?? 20
  const cursor = query.get('cursor')
  let start = 0
  if (cursor !== null) {
    const at = ordered.findIndex((item) => item.id === cursor.toLowerCase())
    if (at < 0) throw badRequest('cursor', `unknown cursor ${cursor}`)
    start = at + 1
  }
  const matching = ordered.slice(start).filter(keep)
  const data = matching.slice(0, limit)
  return { data, next_cursor: matching.length > limit ? (data.at(-1) as T).id : null }
}

function hasAllTags(tags: Record<string, string>, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([key, value]) => tags[key] === value)
}

function snapshotOr404(app: App, id: string): SnapshotRecord {
  const snapshot = app.snapshots.get(requireUuid(id, 'id'))
  if (!snapshot) throw new HttpError(404, `snapshot ${id} not found`)
  return snapshot
}

function sandboxOr404(app: App, id: string): SandboxRecord {
  const sandbox = app.sandboxes.get(requireUuid(id, 'id'))
  if (!sandbox) throw new HttpError(404, `sandbox ${id} not found`)
  return sandbox
}

function checkAlias(alias: string, parameter: string): string {
  if (alias === '' || alias.length > 255 || /[\u0000-\u001f\u007f]/.test(alias)) {
    throw badRequest(parameter, 'alias must be 1 to 255 printable characters')
  }
  return alias
}

// ── snapshots ──────────────────────────────────────────────────────────────────────────────────────────

async function createSnapshot(ctx: Ctx): Promise<Reply> {
  const { app } = ctx
  const body = (await jsonBody(ctx)) as Record<string, unknown>
  rejectUnknownFields(body, ['image', 'architecture', 'ttl', 'tags'])
  const image = requiredString(body, 'image')
  const reference = parseReference(image)
  if (!reference) throw badRequest('image', `"${image}" is not a valid image reference`)
  const architecture = optionalString(body, 'architecture')
  if (architecture !== undefined && architecture !== 'amd64' && architecture !== 'arm64') {
    throw badRequest('architecture', 'architecture must be amd64 or arm64')
  }
  const ttl = optionalInteger(body, 'ttl', 1, MAX_TTL)
  const tags = optionalTags(body, 'tags') ?? {}
  const known = await app.images.resolve(image, AbortSignal.timeout(60_000)).catch(() => null)
  if (!known) throw new HttpError(404, `image ${reference.normalized} not found`)
  const snapshot = app.snapshots.create({
    image: reference.normalized,
    dir: known.dir,
    byteSize: await app.fs.call('treeSize', { path: known.dir }),
    tags,
    ttl: ttl ?? null,
    architecture: architecture ?? null,
  })
  return ok(app.snapshots.toWire(snapshot), 201)
}

function listSnapshots(ctx: Ctx): Reply {
  const { app, query } = ctx
  rejectUnknownQuery(query, ['limit', 'cursor', 'exclude_retired', 'tags['])
  const excludeRetired = queryBoolean(query, 'exclude_retired', false)
  const tags = deepObjectTags(query)
  const page = paginate(app.snapshots.all(), (s) => (!excludeRetired || s.retiredAt === null) && hasAllTags(s.tags, tags), query)
  return ok({ data: page.data.map((s) => app.snapshots.toWire(s)), next_cursor: page.next_cursor })
}

function batchSnapshots(ctx: Ctx): Reply {
  rejectUnknownQuery(ctx.query, ['ids[]'])
  const found = batchIds(ctx.query).flatMap((id) => {
    const snapshot = ctx.app.snapshots.get(id)
    return snapshot ? [ctx.app.snapshots.toWire(snapshot)] : []
  })
  return ok(found)
}

function snapshotByAlias(ctx: Ctx): Reply {
  const alias = ctx.params[0] as string
  const snapshot = ctx.app.snapshots.byAlias(alias)
  if (!snapshot) throw new HttpError(404, `no snapshot has the alias ${alias}`)
  return ok(ctx.app.snapshots.toWire(snapshot))
}

async function aliasSnapshot(ctx: Ctx): Promise<Reply> {
  const snapshot = snapshotOr404(ctx.app, ctx.params[0] as string)
  const body = (await jsonBody(ctx)) as Record<string, unknown>
  rejectUnknownFields(body, ['alias'])
  ctx.app.snapshots.setAlias(checkAlias(requiredString(body, 'alias'), 'alias'), snapshot.id)
  return { status: 204 }
}

// ── sandboxes ──────────────────────────────────────────────────────────────────────────────────────────

function terminationSnapshot(value: Record<string, unknown>, where: string): TerminationSnapshot {
  rejectUnknownFields(value, ['aliases', 'ttl', 'tags'], where)
  const aliases = optionalStringArray(value, 'aliases', where)
  aliases?.forEach((alias, i) => checkAlias(alias, `${where}aliases[${i}]`))
  const ttl = optionalInteger(value, 'ttl', 1, MAX_TTL, where)
  const tags = optionalTags(value, 'tags', where)
  return { ...(aliases ? { aliases } : {}), ...(ttl !== undefined ? { ttl } : {}), ...(tags ? { tags } : {}) }
}

function startFaultOf(ctx: Ctx): StartFault {
  const fault = ctx.startFault
  if (fault?.kind === 'slow-start') return { delayMs: fault.delayMs }
  if (fault?.kind === 'failed-to-start') return { failWith: fault.reason ?? 'internal_error' }
  return {}
}

async function createSandbox(ctx: Ctx): Promise<Reply> {
  const { app } = ctx
  const body = (await jsonBody(ctx)) as Record<string, unknown>
  rejectUnknownFields(body, ['snapshot_id', 'snapshot_alias', 'cpu', 'memory_bytes', 'ttl', 'tags', 'termination_policy'])
  const snapshotId = optionalString(body, 'snapshot_id')
  const snapshotAlias = optionalString(body, 'snapshot_alias')
  if ((snapshotId === undefined) === (snapshotAlias === undefined)) {
    throw badRequest('snapshot_id', 'exactly one of snapshot_id or snapshot_alias is required')
  }
  const cpu = optionalNumber(body, 'cpu', 0.1, 16) ?? 1
  const memoryBytes = optionalInteger(body, 'memory_bytes', 200_000_000, 32_000_000_000) ?? 2_000_000_000
  if (memoryBytes < cpu * 1e9 || memoryBytes > cpu * 8e9) {
    throw badRequest('memory_bytes', 'memory_bytes must be between 1 GB and 8 GB per requested CPU')
  }
  const ttl = optionalInteger(body, 'ttl', 1, MAX_TTL)
  const tags = optionalTags(body, 'tags') ?? {}
  const policyBody = optionalObject(body, 'termination_policy')
  let terminationPolicy: { snapshot: TerminationSnapshot } | null = null
  if (policyBody) {
    rejectUnknownFields(policyBody, ['snapshot'], 'termination_policy.')
    const snapshot = optionalObject(policyBody, 'snapshot', 'termination_policy.')
    if (!snapshot) throw badRequest('termination_policy.snapshot', '"termination_policy.snapshot" is required')
    terminationPolicy = { snapshot: terminationSnapshot(snapshot, 'termination_policy.snapshot.') }
  }
  const snapshot = snapshotId !== undefined ? app.snapshots.get(requireUuid(snapshotId, 'snapshot_id')) : app.snapshots.byAlias(snapshotAlias as string)
  if (!snapshot) throw new HttpError(404, `snapshot ${snapshotId ?? `@${snapshotAlias}`} not found`)
  if (snapshot.retiredAt !== null) {
    throw new HttpError(400, `snapshot ${snapshot.id} is retired and cannot start new sandboxes`, {
      code: 'snapshot_retired',
      errors: [{ parameter: snapshotId !== undefined ? 'snapshot_id' : 'snapshot_alias', code: 'retired' }],
    })
  }
  const record = app.sandboxes.create(
    { snapshotId: snapshot.id, cpu, memoryBytes, ttl: ttl ?? null, tags, terminationPolicy },
    snapshot,
    startFaultOf(ctx),
  )
  return ok(app.sandboxes.toWire(record), 201)
}

function listSandboxes(ctx: Ctx): Reply {
  const { app, query } = ctx
  rejectUnknownQuery(query, ['limit', 'cursor', 'statuses[]', 'snapshot_id', 'tags['])
  const statuses = query.getAll('statuses[]')
  for (const status of statuses) if (!STATUSES.has(status)) throw badRequest('statuses[]', `unknown status ${status}`)
  const snapshotId = query.get('snapshot_id')
  const tags = deepObjectTags(query)
  const page = paginate(
    app.sandboxes.all(),
    (s) => (statuses.length === 0 || statuses.includes(s.status)) && (snapshotId === null || s.snapshotId === snapshotId.toLowerCase()) && hasAllTags(s.tags, tags),
    query,
  )
  return ok({ data: page.data.map((s) => app.sandboxes.toWire(s)), next_cursor: page.next_cursor })
}

function batchSandboxes(ctx: Ctx): Reply {
  rejectUnknownQuery(ctx.query, ['ids[]'])
  const found = batchIds(ctx.query).flatMap((id) => {
    const sandbox = ctx.app.sandboxes.get(id)
    return sandbox ? [ctx.app.sandboxes.toWire(sandbox)] : []
  })
  return ok(found)
}

async function terminateSandbox(ctx: Ctx): Promise<Reply> {
  const { app } = ctx
  const sandbox = sandboxOr404(app, ctx.params[0] as string)
  const body = await jsonBody(ctx, true)
  let snapshot: TerminationSnapshot | null | undefined
  if (body) {
    rejectUnknownFields(body, ['snapshot'])
    if (body.snapshot === null) snapshot = null
    else if (body.snapshot !== undefined) snapshot = terminationSnapshot(optionalObject(body, 'snapshot') as Record<string, unknown>, 'snapshot.')
  }
  app.sandboxes.terminate(sandbox, snapshot, 'termination_requested')
  return ok(app.sandboxes.toWire(sandbox))
}

async function waitForSandbox(ctx: Ctx): Promise<Reply> {
  const { app } = ctx
  const sandbox = sandboxOr404(app, ctx.params[0] as string)
  await app.sandboxes.waitSettled(sandbox, app.options.waitTimeoutMs)
  return ok(app.sandboxes.toWire(sandbox))
}

const SEGMENT = '([^/]+)'

export const API_ROUTES: ReadonlyArray<Route<App>> = [
  { method: 'POST', pattern: /^\/v1\/snapshots$/, handler: createSnapshot },
  { method: 'GET', pattern: /^\/v1\/snapshots$/, handler: listSnapshots },
  { method: 'GET', pattern: /^\/v1\/snapshots\/batch$/, handler: batchSnapshots },
  { method: 'GET', pattern: /^\/v1\/snapshots\/@([^/]+)$/, handler: snapshotByAlias },
  { method: 'GET', pattern: new RegExp(`^/v1/snapshots/${SEGMENT}$`), handler: (ctx) => ok(ctx.app.snapshots.toWire(snapshotOr404(ctx.app, ctx.params[0] as string))) },
  {
    method: 'POST',
    pattern: new RegExp(`^/v1/snapshots/${SEGMENT}/retire$`),
    handler: (ctx) => ok(ctx.app.snapshots.toWire(ctx.app.snapshots.retire(snapshotOr404(ctx.app, ctx.params[0] as string)))),
  },
  { method: 'POST', pattern: new RegExp(`^/v1/snapshots/${SEGMENT}/aliases$`), handler: aliasSnapshot },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/snapshots/${SEGMENT}/aliases$`),
    handler: (ctx) => ok(ctx.app.snapshots.aliasesOf(snapshotOr404(ctx.app, ctx.params[0] as string).id)),
  },
  {
    method: 'DELETE',
    pattern: new RegExp(`^/v1/snapshot-aliases/${SEGMENT}$`),
    handler: (ctx) => {
      ctx.app.snapshots.deleteAlias(ctx.params[0] as string)
      return { status: 204 }
    },
  },
  { method: 'POST', pattern: /^\/v1\/sandboxes$/, handler: createSandbox },
  { method: 'GET', pattern: /^\/v1\/sandboxes$/, handler: listSandboxes },
  { method: 'GET', pattern: /^\/v1\/sandboxes\/batch$/, handler: batchSandboxes },
  { method: 'GET', pattern: new RegExp(`^/v1/sandboxes/${SEGMENT}$`), handler: (ctx) => ok(ctx.app.sandboxes.toWire(sandboxOr404(ctx.app, ctx.params[0] as string))) },
  { method: 'POST', pattern: new RegExp(`^/v1/sandboxes/${SEGMENT}/terminate$`), handler: terminateSandbox },
  { method: 'POST', pattern: new RegExp(`^/v1/sandboxes/${SEGMENT}/wait$`), handler: waitForSandbox },
]
