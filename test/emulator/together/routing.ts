// What a route handler gets and returns, and how a path finds its route. Handlers return a Reply (sent by
// the server, which may replace it with an injected status) or stream their own response and return nothing.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Reply } from './http-io.ts'
import type { FaultAction, RecordedRequest } from './types.ts'

export interface RouteContext<App> {
  app: App
  req: IncomingMessage
  res: ServerResponse
  method: string
  pathname: string
  query: URLSearchParams
  /** Percent-decoded capture groups of the route pattern. */
  params: string[]
  /** Whether buffered and streamed bodies are gzip'ed for this request. */
  gzip: boolean
  record: RecordedRequest
  /** A stream fault (cut-stream, end-stream, error-event) for this response, if one applies. */
  streamFault: FaultAction | undefined
  /** A start fault (slow-start, failed-to-start) for the sandbox this request creates, if one applies. */
  startFault: FaultAction | undefined
  /** The whole body, up to `limit` bytes (default 1 MiB). */
  body(limit?: number): Promise<Buffer>
}

export type Handler<App> = (ctx: RouteContext<App>) => Promise<Reply | void> | Reply | void

export interface Route<App> {
  method: string
  pattern: RegExp
  handler: Handler<App>
  /** Event-stream routes, where stream faults apply. */
  stream?: 'build-log' | 'exec-io'
}

export type RouteMatch<App> = { route: Route<App>; params: string[] } | { methodNotAllowed: true } | null

export function findRoute<App>(routes: ReadonlyArray<Route<App>>, method: string, pathname: string): RouteMatch<App> {
  let pathMatched = false
  for (const route of routes) {
    const match = route.pattern.exec(pathname)
    if (!match) continue
    pathMatched = true
    if (route.method !== method) continue
    let params: string[]
    try {
      params = match.slice(1).map((segment) => decodeURIComponent(segment ?? ''))
    } catch {
      return null
    }
    return { route, params }
  }
  return pathMatched ? { methodNotAllowed: true } : null
}
