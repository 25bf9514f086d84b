// The headers an emulator keeps of each request it records (emulator.requests, GET /_emulator/requests):
// names lower-cased as node gives them, repeated values joined, and the authorization value replaced so a
// token never reaches a test's output or a log through the record.
import type { IncomingMessage } from 'node:http'

export function recordedHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue
    headers[name] = name === 'authorization' ? '<redacted>' : Array.isArray(value) ? value.join(', ') : value
  }
  return headers
}
