// Helpers for the emulator's own tests: raw HTTP calls with gzip decoding and an SSE frame parser.
import { Readable } from 'node:stream'
import { gunzipSync, constants as zlibConstants } from 'node:zlib'
import { request, type Dispatcher } from 'undici'

export interface CallResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  json(): any
}

export async function call(
  base: string,
  method: Dispatcher.HttpMethod,
  path: string,
  opts: { body?: unknown; headers?: Record<string, string>; dispatcher?: Dispatcher; signal?: AbortSignal } = {},
): Promise<CallResult> {
  const isRaw =
    typeof opts.body === 'string' || opts.body instanceof Uint8Array || opts.body instanceof Readable || opts.body === undefined
  const body = isRaw ? (opts.body as string | Uint8Array | Readable | undefined) : JSON.stringify(opts.body)
  const res = await request(base + path, {
    method,
    body,
    headers: { 'accept-encoding': 'gzip', ...(isRaw ? {} : { 'content-type': 'application/json' }), ...opts.headers },
    dispatcher: opts.dispatcher,
    signal: opts.signal,
  })
  const raw = Buffer.from(await res.body.arrayBuffer())
  const decoded = res.headers['content-encoding'] === 'gzip' && raw.length > 0 ? gunzipSync(raw) : raw
  return {
    status: res.statusCode,
    headers: res.headers,
    body: decoded,
    json: () => JSON.parse(decoded.toString('utf8')),
  }
}

export interface StreamResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** Decoded text of everything received, even if the stream broke. */
  text: string
  /** The decoded bytes behind `text` (a cut may end inside a UTF-8 character). */
  bytes: Buffer
  /** The transport error that ended the body, if any. */
  error: Error | null
  /** Whether the gzip member was complete (trailer present); true for identity bodies. */
  gzipComplete: boolean
  /** Why gzip decoding stopped early (corrupt or truncated data), null when it did not. */
  gzipError: string | null
  rawChunks: Buffer[]
}

/** Decodes as much of a gzip body as is valid, as a streaming client would before it hits bad data. */
export function gunzipLeniently(raw: Buffer): { bytes: Buffer; error: string | null } {
  const partial = (length: number) => gunzipSync(raw.subarray(0, length), { finishFlush: zlibConstants.Z_SYNC_FLUSH })
  let bytes: Buffer
  let error: string | null = null
  try {
    bytes = partial(raw.length)
  } catch (caught) {
    error = (caught as Error).message
    // Every prefix before the bad bytes decodes: find the longest one.
    let good = 0
    let bad = raw.length
    while (bad - good > 1) {
      const middle = Math.floor((good + bad) / 2)
      try {
        partial(middle)
        good = middle
      } catch {
        bad = middle
      }
    }
    bytes = good > 0 ? partial(good) : Buffer.alloc(0)
  }
  if (error === null) {
    try {
      gunzipSync(raw)
    } catch (caught) {
      error = (caught as Error).message
    }
  }
  return { bytes, error }
}

/** Reads a whole (possibly broken) stream; decodes gzip leniently so partial payloads are visible. */
export async function readStream(
  base: string,
  path: string,
  headers: Record<string, string> = {},
  opts: { signal?: AbortSignal } = {},
): Promise<StreamResult> {
  const res = await request(base + path, {
    headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip', ...headers },
    signal: opts.signal,
  })
  const rawChunks: Buffer[] = []
  let error: Error | null = null
  try {
    for await (const chunk of res.body) rawChunks.push(chunk as Buffer)
  } catch (caught) {
    error = caught as Error
  }
  const raw = Buffer.concat(rawChunks)
  let bytes: Buffer = raw
  let gzipError: string | null = null
  if (res.headers['content-encoding'] === 'gzip' && raw.length > 0) {
    const decoded = gunzipLeniently(raw)
    bytes = decoded.bytes
    gzipError = decoded.error
  }
  return {
    status: res.statusCode,
    headers: res.headers,
    text: bytes.toString('utf8'),
    bytes,
    error,
    gzipComplete: gzipError === null,
    gzipError,
    rawChunks,
  }
}

export interface SseFrame {
  id: number | null
  event: string | null
  data: string
}

/** Splits SSE text into complete frames (comments dropped); the unterminated tail is returned apart. */
export function parseSse(text: string): { frames: SseFrame[]; tail: string; comments: string[] } {
  const blocks = text.split('\n\n')
  const tail = blocks.pop() ?? ''
  const frames: SseFrame[] = []
  const comments: string[] = []
  for (const block of blocks) {
    let id: number | null = null
    let event: string | null = null
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) comments.push(line)
      else if (line.startsWith('id: ')) id = Number(line.slice(4))
      else if (line.startsWith('event: ')) event = line.slice(7)
      else if (line.startsWith('data: ')) data.push(line.slice(6))
    }
    if (id !== null || event !== null || data.length > 0) frames.push({ id, event, data: data.join('\n') })
  }
  return { frames, tail, comments }
}

export async function spawn(base: string, body: Record<string, unknown>): Promise<string> {
  const res = await call(base, 'POST', '/v1/instances', { body: { image: 'tag:busybox:latest', ...body } })
  if (res.status !== 201) throw new Error(`spawn failed: ${res.status} ${res.body.toString()}`)
  return res.json().uuid as string
}

export async function waitTerminal(base: string, op: string): Promise<any> {
  for (;;) {
    const res = await call(base, 'GET', `/v1/operations/${op}`)
    const record = res.json()
    if (['SUCCESS', 'FAILED', 'CANCELLED'].includes(record.status)) return record
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export async function waitStatus(base: string, op: string, status: string): Promise<void> {
  for (;;) {
    const record = (await call(base, 'GET', `/v1/operations/${op}`)).json()
    if (record.status === status) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export function decodeRepr(repr: { value: string; encoding: string }): Buffer {
  return repr.encoding === 'base64' ? Buffer.from(repr.value, 'base64') : Buffer.from(repr.value, 'latin1')
}
