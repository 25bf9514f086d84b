/**
 * The registry resolver's transport over the action's one HTTP client, so registry requests get the
 * same proxy support, timeouts and retry policy as everything else.
 */
import { HttpClient } from '../http/client.ts'
import type { RegistryRequest, RegistryResponse, RegistryTransport } from './resolve-digest.ts'

/** Registry answers the resolver interprets itself (auth challenges, unknown tags). */
const INTERPRETED_STATUSES = [401, 403, 404, 405]
const REGISTRY_TIMEOUT_MS = 30_000

export function createRegistryTransport(): RegistryTransport {
  const clients = new Map<string, HttpClient>()
  return {
    async request(req: RegistryRequest): Promise<RegistryResponse> {
      const url = new URL(req.url)
      let client = clients.get(url.origin)
      if (!client) {
        client = new HttpClient({ baseUrl: url.origin, requestTimeoutMs: REGISTRY_TIMEOUT_MS })
        clients.set(url.origin, client)
      }
      const response = await client.request({
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        accept: INTERPRETED_STATUSES,
        ...(req.signal ? { signal: req.signal } : {}),
      })
      if (req.method === 'HEAD') await response.dump()
      return { status: response.status, headers: response.headers, text: () => response.text(), bytes: () => response.bytes() }
    },
  }
}
