/**
 * Typed failures of the HTTP layer. Callers branch on these classes (retry, reconnect, report), so
 * each one carries what the decision needs. Messages name the method and URL without the query
 * string and never include header values: tokens travel only in headers and are never echoed.
 */

/** The server answered with a status the caller did not accept. */
export class HttpError extends Error {
  readonly status: number
  readonly method: string
  readonly url: string
  readonly requestId: string | undefined
  /** Parsed `Retry-After`, already capped; undefined when absent or unparseable. */
  readonly retryAfterMs: number | undefined
  /** The Error body's `error` field (or its text), when there was one. */
  readonly detail: string | undefined

  constructor(init: {
    status: number
    method: string
    url: string
    detail?: string | undefined
    requestId?: string | undefined
    retryAfterMs?: number | undefined
  }) {
    const suffix = init.requestId ? ` (request id ${init.requestId})` : ''
    const detail = init.detail ? `: ${init.detail}` : ''
    super(`${init.method} ${init.url} failed with HTTP ${init.status}${detail}${suffix}`)
    this.name = 'HttpError'
    this.status = init.status
    this.method = init.method
    this.url = init.url
    this.detail = init.detail
    this.requestId = init.requestId
    this.retryAfterMs = init.retryAfterMs
  }
}

/** The connection failed (refused, reset, DNS, broken framing) before a usable response arrived. */
export class TransportError extends Error {
  /** Node/undici error code, e.g. ECONNRESET, ECONNREFUSED, UND_ERR_SOCKET. */
  readonly code: string | undefined
  /**
   * Whether the request may have reached the server. False only when we know it did not
   * (the connection was never established), which is what makes a POST safe to replay.
   */
  readonly requestSent: boolean
  readonly method: string
  readonly url: string

  constructor(init: { method: string; url: string; code?: string | undefined; requestSent: boolean; cause?: unknown; message?: string }) {
    const code = init.code ? ` (${init.code})` : ''
    super(`${init.method} ${init.url}: ${init.message ?? 'connection failed'}${code}`, { cause: init.cause })
    this.name = 'TransportError'
    this.code = init.code
    this.requestSent = init.requestSent
    this.method = init.method
    this.url = init.url
  }
}

/** No response headers, or no body bytes, arrived within the allowed time. */
export class RequestTimeoutError extends Error {
  readonly method: string
  readonly url: string
  readonly timeoutMs: number

  constructor(init: { method: string; url: string; timeoutMs: number; phase: 'headers' | 'body' | 'connect'; cause?: unknown }) {
    super(`${init.method} ${init.url}: no ${init.phase === 'body' ? 'body data' : init.phase === 'connect' ? 'connection' : 'response'} within ${init.timeoutMs} ms`, {
      cause: init.cause,
    })
    this.name = 'RequestTimeoutError'
    this.method = init.method
    this.url = init.url
    this.timeoutMs = init.timeoutMs
  }
}

/** A gzip body ended before its trailer: the payload is incomplete even though the socket closed cleanly. */
export class TruncatedBodyError extends Error {
  readonly url: string
  constructor(url: string, cause?: unknown) {
    super(`response body of ${url} was truncated (gzip stream ended before its trailer)`, { cause })
    this.name = 'TruncatedBodyError'
    this.url = url
  }
}

/** A gzip body could not be decoded at all. Distinct from truncation: replaying it will not help. */
export class CorruptBodyError extends Error {
  readonly url: string
  constructor(url: string, cause?: unknown) {
    super(`response body of ${url} is not valid gzip`, { cause })
    this.name = 'CorruptBodyError'
    this.url = url
  }
}
