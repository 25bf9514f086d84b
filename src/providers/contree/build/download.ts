/**
 * Fetches the exact bytes behind an `ADD <url>` through the action's HTTP client (proxy support,
 * retries), following redirects by hand since the client never follows them on its own.
 */
import { createHash } from 'node:crypto'
import { HttpClient } from '../../../http/client.ts'

const MAX_REDIRECTS = 5
const REDIRECTS = [301, 302, 303, 307, 308]
const DOWNLOAD_TIMEOUT_MS = 300_000

export interface Download {
  bytes: Buffer
  sha256: string
}

export async function downloadUrl(url: string, signal?: AbortSignal): Promise<Download> {
  let current = new URL(url)
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const client = new HttpClient({ baseUrl: current.origin, requestTimeoutMs: DOWNLOAD_TIMEOUT_MS })
    const response = await client.request({
      method: 'GET',
      path: current.pathname,
      query: Object.fromEntries(current.searchParams),
      accept: REDIRECTS,
      ...(signal ? { signal } : {}),
    })
    const location = response.headers.location
    if (REDIRECTS.includes(response.status) && location) {
      await response.dump()
      current = new URL(location, current)
      continue
    }
    const chunks: Uint8Array[] = []
    for await (const chunk of response.body) chunks.push(chunk)
    const bytes = Buffer.concat(chunks)
    return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') }
  }
  throw new Error(`${displayUrl(url)} redirected more than ${MAX_REDIRECTS} times`)
}

/**
 * A URL as it may be printed: without its query string and fragment, which often carry credentials
 * (signed URLs, `?token=`), and without userinfo.
 */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}${parsed.search || parsed.hash ? '?…' : ''}`
  } catch {
    return url.replace(/[?#].*$/, '?…')
  }
}

