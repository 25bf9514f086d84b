// The HTTP client of the emulators' own tests: plain calls with gzip decoded, and whole event streams read
// to their end or their break, gzip decoded leniently so what arrived before a cut or bad bytes still
// shows. Each emulator's test-client.ts wraps these in its own addressing (base + path, bearer tokens).
import { Readable } from 'node:stream'
import { gunzipSync, constants as zlibConstants } from 'node:zlib'
import { request, type Dispatcher } from 'undici'

export interface CallResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  json(): any
}

export interface CallOptions {
  /** Sent as is when a string, bytes or a stream; otherwise as JSON with `Content-Type: application/json`. */
  body?: unknown
  /** Added after the defaults, so they can replace them. */
  headers?: Record<string, string>
  dispatcher?: Dispatcher
  signal?: AbortSignal
}

/** One request that accepts gzip; the body comes back decoded. */
export async function callUrl(url: string, method: Dispatcher.HttpMethod, opts: CallOptions = {}): Promise<CallResult> {
  const isRaw =
    typeof opts.body === 'string' || opts.body instanceof Uint8Array || opts.body instanceof Readable || opts.body === undefined
  const body = isRaw ? (opts.body as string | Uint8Array | Readable | undefined) : JSON.stringify(opts.body)
  const res = await request(url, {
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

/** Reads a whole (possibly broken) event stream; `headers` are added after the defaults. */
export async function readEventStream(url: string, headers: Record<string, string> = {}, opts: { signal?: AbortSignal } = {}): Promise<StreamResult> {
  const res = await request(url, {
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
