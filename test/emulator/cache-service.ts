/**
 * An in-memory emulator of the GitHub Actions cache service v2, real enough for the unmodified
 * @actions/cache 6.x to save and restore through it (platform notes §3.6, §3.10):
 * - twirp JSON: CreateCacheEntry, FinalizeCacheEntryUpload, GetCacheEntryDownloadURL;
 * - Azure-Blob-shaped uploads to the signed URL: single-shot PUT, `comp=block`, `comp=blocklist`;
 * - plain GET download (the client uses plain HTTP for hosts that are not *.blob.core.windows.net).
 * Matching follows GitHub: for the primary key and then each restore key, an exact match, then the
 * newest entry the key is a prefix of. Entries are immutable per (key, version).
 * Fault modes: `down` (port closed), `write-denied`, `read-denied`.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

const TWIRP_PREFIX = '/twirp/github.actions.results.api.v1.CacheService/'
export const WRITE_DENIED_MESSAGE = 'cache write denied: token has no writable scopes'
export const READ_DENIED_MESSAGE = 'cache read denied: token has no readable scopes'

export type CacheServiceMode = 'ok' | 'down' | 'write-denied' | 'read-denied'

export interface CacheServiceOptions {
  /** Listen on this loopback port instead of a free one. */
  port?: number
}

export interface CacheEntryInfo {
  key: string
  version: string
  size: number
  createdAt: Date
}

export interface RecordedRequest {
  method: string
  /** Path and query, e.g. `/twirp/…/CreateCacheEntry` or `/upload/<id>?comp=block&blockid=…`. */
  path: string
  /** Parsed JSON for twirp calls; absent for blob traffic. */
  body?: unknown
}

export interface CacheService {
  /** Base URL with a trailing slash, as ACTIONS_RESULTS_URL wants it. */
  url: string
  /** The environment @actions/cache needs to talk to this emulator through protocol v2. */
  env(): Record<string, string>
  /** Committed entries, oldest first. */
  entries(): CacheEntryInfo[]
  requests: RecordedRequest[]
  /** Resolves once the change is in effect (for `down`/back: the port is closed/listening again). */
  setMode(mode: CacheServiceMode): Promise<void>
  close(): Promise<void>
}

interface Entry {
  id: number
  key: string
  version: string
  uploadId: string
  committed: boolean
  /** Blocks staged with comp=block, by block id. */
  blocks: Map<string, Buffer>
  data: Buffer
  size: number
  createdAt: Date
  /** Monotonic, so "newest first" does not depend on clock resolution. */
  sequence: number
}

export async function startCacheService(opts: CacheServiceOptions = {}): Promise<CacheService> {
  const entries: Entry[] = []
  const requests: RecordedRequest[] = []
  let mode: CacheServiceMode = 'ok'
  let nextId = 1
  let sequence = 0
  let base = ''
  const sockets = new Set<Socket>()

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', base)
    const bodyBytes = await readBody(req)
    const record: RecordedRequest = { method: req.method ?? 'GET', path: `${url.pathname}${url.search}` }
    requests.push(record)

    if (url.pathname.startsWith(TWIRP_PREFIX) && req.method === 'POST') {
      let body: Record<string, unknown>
      try {
        body = JSON.parse(bodyBytes.toString('utf8') || '{}') as Record<string, unknown>
      } catch {
        return twirpError(res, 400, 'malformed', 'request body is not JSON')
      }
      record.body = body
      if (!/^Bearer\s+\S+/.test(req.headers.authorization ?? '')) {
        return twirpError(res, 401, 'unauthenticated', 'missing bearer token')
      }
      const method = url.pathname.slice(TWIRP_PREFIX.length)
      switch (method) {
        case 'CreateCacheEntry':
          return createEntry(res, body)
        case 'FinalizeCacheEntryUpload':
          return finalizeEntry(res, body)
        case 'GetCacheEntryDownloadURL':
          return downloadUrl(res, body)
        default:
          return twirpError(res, 404, 'bad_route', `no method ${method}`)
      }
    }
    const upload = /^\/upload\/([^/]+)$/.exec(url.pathname)
    if (upload !== null && req.method === 'PUT') return uploadBlob(req, res, upload[1] ?? '', url.searchParams, bodyBytes)
    const download = /^\/download\/(\d+)$/.exec(url.pathname)
    if (download !== null && (req.method === 'GET' || req.method === 'HEAD')) return downloadBlob(res, Number(download[1]))
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end(`no route for ${req.method} ${url.pathname}`)
  }

  const createEntry = (res: ServerResponse, body: Record<string, unknown>): void => {
    if (mode === 'write-denied') return json(res, 200, { ok: false, message: WRITE_DENIED_MESSAGE })
    const key = stringField(body, 'key')
    const version = stringField(body, 'version')
    if (key === '' || version === '') return twirpError(res, 400, 'invalid_argument', 'key and version are required')
    // Immutable per (key, version), and an upload in flight blocks a second writer too.
    if (entries.some((e) => e.key === key && e.version === version)) return json(res, 200, { ok: false })
    const entry: Entry = {
      id: nextId++,
      key,
      version,
      uploadId: randomUUID(),
      committed: false,
      blocks: new Map(),
      data: Buffer.alloc(0),
      size: 0,
      createdAt: new Date(),
      sequence: 0,
    }
    entries.push(entry)
    // The query string stands in for an Azure SAS; the client only appends to it.
    json(res, 200, { ok: true, signed_upload_url: `${base}upload/${entry.uploadId}?sv=2024-11-04&sig=emulator` })
  }

  const finalizeEntry = (res: ServerResponse, body: Record<string, unknown>): void => {
    const key = stringField(body, 'key')
    const version = stringField(body, 'version')
    const entry = entries.find((e) => e.key === key && e.version === version && !e.committed)
    if (entry === undefined) return twirpError(res, 404, 'not_found', `no pending upload for key ${key}`)
    const declared = Number(body['size_bytes'] ?? body['sizeBytes'] ?? entry.data.length)
    entry.committed = true
    entry.size = Number.isFinite(declared) ? declared : entry.data.length
    entry.createdAt = new Date()
    entry.sequence = ++sequence
    json(res, 200, { ok: true, entry_id: String(entry.id) })
  }

  const downloadUrl = (res: ServerResponse, body: Record<string, unknown>): void => {
    if (mode === 'read-denied') return twirpError(res, 403, 'permission_denied', READ_DENIED_MESSAGE)
    const version = stringField(body, 'version')
    const restoreKeys = body['restore_keys'] ?? body['restoreKeys']
    const keys = [stringField(body, 'key'), ...(Array.isArray(restoreKeys) ? restoreKeys.map(String) : [])].filter((k) => k !== '')
    const candidates = entries.filter((e) => e.committed && e.version === version).sort((a, b) => b.sequence - a.sequence)
    for (const key of keys) {
      const hit = candidates.find((e) => e.key === key) ?? candidates.find((e) => e.key.startsWith(key))
      if (hit !== undefined) {
        return json(res, 200, { ok: true, signed_download_url: `${base}download/${hit.id}`, matched_key: hit.key })
      }
    }
    json(res, 200, { ok: false, signed_download_url: '', matched_key: '' })
  }

  const uploadBlob = (req: IncomingMessage, res: ServerResponse, uploadId: string, query: URLSearchParams, body: Buffer): void => {
    const entry = entries.find((e) => e.uploadId === uploadId && !e.committed)
    if (entry === undefined) return blobReply(res, 404)
    const comp = query.get('comp')
    if (comp === 'block') {
      entry.blocks.set(query.get('blockid') ?? '', body)
    } else if (comp === 'blocklist') {
      // <BlockList><Latest>id</Latest>…</BlockList>: the order of the list is the order of the blob.
      const ids = [...body.toString('utf8').matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]*)<\//g)].map((m) => m[1] ?? '')
      const parts: Buffer[] = []
      for (const id of ids) {
        const block = entry.blocks.get(id)
        if (block === undefined) return blobReply(res, 400)
        parts.push(block)
      }
      entry.data = Buffer.concat(parts)
      entry.blocks.clear()
    } else if (req.headers['x-ms-blob-type'] === 'BlockBlob' || comp === null) {
      entry.data = body
    } else {
      return blobReply(res, 400)
    }
    blobReply(res, 201)
  }

  const downloadBlob = (res: ServerResponse, id: number): void => {
    const entry = entries.find((e) => e.id === id && e.committed)
    if (entry === undefined) return blobReply(res, 404)
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': entry.data.length,
      'x-ms-request-id': randomUUID(),
    })
    res.end(entry.data)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) twirpError(res, 400, 'internal', String(error))
      else res.destroy()
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })

  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  const stopListening = (): Promise<void> =>
    new Promise((resolve) => {
      if (!server.listening) return resolve()
      server.close(() => resolve())
      // Keep-alive connections would otherwise still reach a "down" service.
      for (const socket of sockets) socket.destroy()
    })

  await listen(opts.port ?? 0)
  const port = (server.address() as AddressInfo).port
  base = `http://127.0.0.1:${port}/`

  return {
    url: base,
    env: () => ({
      ACTIONS_CACHE_SERVICE_V2: 'true',
      ACTIONS_RESULTS_URL: base,
      ACTIONS_RUNTIME_TOKEN: runtimeToken(),
    }),
    entries: () =>
      entries
        .filter((e) => e.committed)
        .sort((a, b) => a.sequence - b.sequence)
        .map((e) => ({ key: e.key, version: e.version, size: e.size, createdAt: e.createdAt })),
    requests,
    setMode: async (next) => {
      const wasDown = mode === 'down'
      mode = next
      if (next === 'down' && !wasDown) await stopListening()
      if (next !== 'down' && wasDown) await listen(port)
    },
    close: stopListening,
  }
}

/** An unsigned JWT shaped like the runner's: the client never verifies it, and scopes grant read/write. */
function runtimeToken(): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const claims = {
    ac: JSON.stringify([{ Scope: 'refs/heads/main', Permission: 3 }]),
    repository_id: '1',
    iat: 1_700_000_000,
    exp: 4_102_444_800,
  }
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(claims)}.`
}

function stringField(body: Record<string, unknown>, name: string): string {
  const value = body[name]
  return typeof value === 'string' ? value : ''
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function twirpError(res: ServerResponse, status: number, code: string, msg: string): void {
  json(res, status, { code, msg })
}

function blobReply(res: ServerResponse, status: number): void {
  res.writeHead(status, {
    'x-ms-request-id': randomUUID(),
    'x-ms-version': '2024-11-04',
    date: new Date().toUTCString(),
    'content-length': 0,
  })
  res.end()
}
