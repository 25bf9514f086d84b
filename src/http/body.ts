/**
 * Response body decoding: incremental gunzip plus translation of low-level stream failures into
 * the typed errors of errors.ts, so readers (SSE follower, JSON) can tell a truncated payload from
 * a dropped connection.
 */
import { Readable } from 'node:stream'
import { constants as zlibConstants, createGunzip } from 'node:zlib'
import { CorruptBodyError, RequestTimeoutError, TransportError, TruncatedBodyError } from './errors.ts'

export interface BodyContext {
  method: string
  url: string
  timeoutMs: number
  signal?: AbortSignal | undefined
}

/** Decodes (when gzip) and maps errors; yields each piece as soon as it can be decoded. */
export async function* decodeBody(raw: AsyncIterable<Uint8Array>, gzip: boolean, ctx: BodyContext): AsyncGenerator<Uint8Array> {
  const source = raw instanceof Readable ? { [Symbol.asyncIterator]: () => arrivals(raw) } : raw
  try {
    if (gzip) yield* gunzipIncrementally(source)
    else yield* source
  } catch (error) {
    throw mapBodyError(error, ctx)
  }
}

/** Chunks that arrived and were not taken yet, beyond this, pause the stream they come from (see DECODED_HIGH_WATER). */
const ARRIVED_HIGH_WATER = 64 * 1024

/**
 * The chunks of a Node stream one by one, as they arrived (the response body, and the decoder's
 * output). The stream's own async iterator reads with `read()`, which joins every chunk buffered
 * since the last read into a fresh buffer: a copy of the whole body, made while the reader is busy,
 * which is exactly when chunks pile up (measured: 70 ms per 100 MB of event stream). The stream is
 * paused while `highWater` bytes wait; whatever arrived before a failure is handed out before it;
 * `return()` destroys the stream, so a reader parked in `next()` is released at once.
 */
function arrivals(stream: Readable, highWater = ARRIVED_HIGH_WATER): AsyncIterator<Uint8Array> {
  const queue: Uint8Array[] = []
  let queuedBytes = 0
  let ended = false
  let failure: unknown
  let wake: (() => void) | undefined
  const notify = (): void => {
    const resolve = wake
    wake = undefined
    resolve?.()
  }
  stream.on('data', (chunk: Uint8Array) => {
    queue.push(chunk)
    queuedBytes += chunk.byteLength
    if (queuedBytes >= highWater) stream.pause()
    notify()
  })
  stream.on('error', (error) => {
    failure ??= error
    notify()
  })
  // 'close' without 'end' is a stream destroyed without an error: nothing more will come.
  stream.on('end', () => ((ended = true), notify()))
  stream.on('close', () => ((ended = true), notify()))
  return {
    async next(): Promise<IteratorResult<Uint8Array>> {
      for (;;) {
        const chunk = queue.shift()
        if (chunk !== undefined) {
          queuedBytes -= chunk.byteLength
          if (stream.isPaused() && queuedBytes < highWater) stream.resume()
          return { value: chunk, done: false }
        }
        if (failure !== undefined) throw failure
        if (ended) return { value: undefined, done: true }
        await new Promise<void>((resolve) => (wake = resolve))
      }
    },
    async return(): Promise<IteratorResult<Uint8Array>> {
      stream.destroy()
      return { value: undefined, done: true }
    },
  }
}

/*
 * How far ahead of the reader the connection and the decoder may run. A buffer that waits in a
 * queue while the reader works through a few events outlives two young-generation collections, and
 * a promoted buffer's memory comes back only with a full collection: with 1 MiB of chunks allowed to
 * wait, streaming 100 MB of output ran 17–20 full collections (each marking the whole heap, ~0.5 s
 * of CPU in all). Now decoded output waits in a short queue, and compressed input is copied on
 * arrival into the decoder's own two buffers (see gunzipIncrementally), so the connection's chunks
 * die young: 1–2 full collections, lower peak RSS. Input may still gather in large batches, as every
 * batch is a round trip to the thread pool: with 64 KiB batches a stream of 1 KiB events took 15%
 * longer.
 */
/** Decoded output buffered beyond this pauses the decoder until the reader catches up. */
const DECODED_HIGH_WATER = 128 * 1024
/** Compressed input gathered for the decoder beyond this pauses reading from the connection. */
const PENDING_HIGH_WATER = 256 * 1024
/** Output buffers of the decoder: a whole sync-flushed frame of a large event usually fits one. */
const GUNZIP_CHUNK_BYTES = 128 * 1024

async function* gunzipIncrementally(raw: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const input = raw[Symbol.asyncIterator]()
  let first = await input.next()
  while (!first.done && first.value.byteLength === 0) first = await input.next()
  // Empty bodies labelled gzip (HEAD, 202, 204) are not a gzip stream at all.
  if (first.done) return
  // Sync-flush each write so every chunk the server flushed is decoded on arrival; finish with
  // Z_FINISH so a stream that stops before its trailer fails loudly instead of ending short.
  const gunzip = createGunzip({ flush: zlibConstants.Z_SYNC_FLUSH, finishFlush: zlibConstants.Z_FINISH, chunkSize: GUNZIP_CHUNK_BYTES })
  // Decoded output is handed out as it comes, ahead of any decoding error.
  const decoded = arrivals(gunzip, DECODED_HIGH_WATER)
  let decodeError: unknown
  let inputError: unknown
  gunzip.on('error', (error) => (decodeError ??= error))
  // Not a pipeline: when the connection drops, everything that arrived before the drop is still
  // decoded and handed out first, and only then the connection error is raised.
  //
  // Input is handed to the decoder one write at a time, each holding everything that arrived while
  // the previous one was decoded: every write is a round trip to the thread pool, and a server that
  // flushes each small event arrives as thousands of small HTTP chunks.
  //
  // What arrives is copied at once into a buffer that lives as long as the decoder (two of them,
  // swapped as the decoder takes a batch): the connection's own chunks then die young however long
  // the batch waits, and a batch can be large without its chunks being promoted.
  let filling = Buffer.allocUnsafe(Math.max(first.value.byteLength, 64 * 1024))
  let pendingBytes = 0
  const take = (chunk: Uint8Array): void => {
    if (pendingBytes + chunk.byteLength > filling.length) {
      const grown = Buffer.allocUnsafe(Math.max(pendingBytes + chunk.byteLength, 2 * filling.length))
      filling.copy(grown, 0, 0, pendingBytes)
      filling = grown
    }
    filling.set(chunk, pendingBytes)
    pendingBytes += chunk.byteLength
  }
  take(first.value)
  let inputDone = false
  let feederWake: (() => void) | undefined
  let readerWake: (() => void) | undefined
  const wakeFeeder = (): void => {
    const resolve = feederWake
    feederWake = undefined
    resolve?.()
  }
  const wakeReader = (): void => {
    const resolve = readerWake
    readerWake = undefined
    resolve?.()
  }
  void (async () => {
    try {
      for (;;) {
        while (pendingBytes >= PENDING_HIGH_WATER && decodeError === undefined) await new Promise<void>((resolve) => (readerWake = resolve))
        if (decodeError !== undefined) break
        const next = await input.next()
        if (next.done) break
        take(next.value)
        wakeFeeder()
      }
    } catch (error) {
      inputError = error
    }
    inputDone = true
    wakeFeeder()
  })()
  void (async () => {
    // The buffer the decoder reads from; the other one fills meanwhile.
    let draining = Buffer.allocUnsafe(filling.length)
    for (;;) {
      if (decodeError !== undefined) return
      if (pendingBytes === 0) {
        if (inputDone) break
        await new Promise<void>((resolve) => (feederWake = resolve))
        continue
      }
      const batch = filling.subarray(0, pendingBytes)
      ;[filling, draining] = [draining, filling]
      pendingBytes = 0
      wakeReader()
      // The callback comes once the decoder has taken the batch, later when its reader is behind.
      await new Promise<void>((resolve) => gunzip.write(batch, () => resolve()))
    }
    // The reader sets inputError before it reports the input done, so it is known by now.
    if (decodeError !== undefined) return
    // Let everything written so far be decoded and handed out before finishing: finishing a stream
    // that lacks its trailer raises an error, and an error raised in the same turn as the last
    // output would discard that output.
    await new Promise<void>((resolve) => gunzip.write(new Uint8Array(0), () => setImmediate(resolve)))
    if (decodeError === undefined) gunzip.end()
  })()
  try {
    for (;;) {
      let next: IteratorResult<Uint8Array>
      try {
        next = await decoded.next()
      } catch (error) {
        // inputError is set before the gunzip stream is ended, so it is known by now.
        // A dropped connection also leaves the gzip stream unfinished; the drop is the real cause.
        throw inputError ?? error
      }
      if (next.done) break
      yield next.value
    }
  } finally {
    await decoded.return?.()
    // The feeder may be parked in input.next(); an async iterator queues return() behind it, so
    // destroy the source first or an early stop would wait for the server's next byte.
    const destroy = (raw as { destroy?: unknown }).destroy
    if (typeof destroy === 'function') destroy.call(raw)
    await input.return?.().catch(() => undefined)
  }
}

const CONNECT_PHASE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
])

export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') return code
  // undici's HTTPParserError (e.g. a connection closed in the middle of a chunk) often carries no
  // code at all; it is still a broken connection, not a programming error.
  if ((error as { name?: unknown }).name === 'HTTPParserError') return 'HPE_INVALID_RESPONSE'
  // Happy-eyeballs connects fail with an AggregateError whose members carry the code.
  const inner = (error as { errors?: unknown }).errors
  if (Array.isArray(inner)) return errorCode(inner[0])
  const cause = (error as { cause?: unknown }).cause
  return cause === undefined || cause === error ? undefined : errorCode(cause)
}

/** True when the error proves the request never left this process. */
export function isConnectPhaseError(code: string | undefined): boolean {
  return code !== undefined && CONNECT_PHASE_CODES.has(code)
}

/**
 * Maps an error thrown while sending or waiting for a response. Returns undefined for errors that
 * are not about the network (programmer errors), which the caller rethrows unchanged.
 */
export function mapRequestError(error: unknown, ctx: BodyContext): TransportError | RequestTimeoutError | undefined {
  const code = errorCode(error)
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new RequestTimeoutError({ ...ctx, phase: 'headers', cause: error })
  if (code === 'UND_ERR_BODY_TIMEOUT') return new RequestTimeoutError({ ...ctx, phase: 'body', cause: error })
  if (code === undefined || code === 'UND_ERR_INVALID_ARG' || code === 'ERR_INVALID_URL' || code === 'UND_ERR_ABORTED') return undefined
  if (!code.startsWith('E') && !code.startsWith('UND_ERR') && !code.startsWith('HPE_')) return undefined
  return new TransportError({
    method: ctx.method,
    url: ctx.url,
    code,
    requestSent: !isConnectPhaseError(code),
    cause: error,
    message: isConnectPhaseError(code) ? 'could not connect' : 'connection failed',
  })
}

function mapBodyError(error: unknown, ctx: BodyContext): unknown {
  if (ctx.signal?.aborted) return ctx.signal.reason
  const code = errorCode(error)
  if (code === 'Z_BUF_ERROR') return new TruncatedBodyError(ctx.url, error)
  if (code === 'Z_DATA_ERROR' || code === 'Z_STREAM_ERROR' || code === 'Z_NEED_DICT') return new CorruptBodyError(ctx.url, error)
  const mapped = mapRequestError(error, ctx)
  if (mapped instanceof TransportError) {
    return new TransportError({ method: ctx.method, url: ctx.url, code: mapped.code, requestSent: true, cause: error, message: 'connection lost while reading the response' })
  }
  return mapped ?? error
}
