/**
 * The yardstick of the exec-stream figure, in its own process: one plain GET of an exec's output
 * stream (the agent replays it from the start and ends after the exit frame), gunzipped and counted,
 * with no SSE parsing and nothing printed. Prints {ms, wireBytes, sseBytes}.
 * Usage: node together-raw-stream.ts <url> <bearer token>
 */
import { request } from 'node:http'
import { createGunzip } from 'node:zlib'

const [url, token] = process.argv.slice(2) as [string, string]
const started = performance.now()
let wireBytes = 0
let sseBytes = 0
const req = request(new URL(url), { headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream', 'Accept-Encoding': 'gzip' } })
req.on('error', (error) => {
  process.stderr.write(`${error.message}\n`)
  process.exit(1)
})
req.on('response', (res) => {
  if (res.statusCode !== 200) {
    process.stderr.write(`GET answered ${res.statusCode}\n`)
    process.exit(1)
  }
  res.on('data', (chunk: Buffer) => (wireBytes += chunk.length))
  const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res
  body.on('data', (chunk: Buffer) => (sseBytes += chunk.length))
  body.on('end', () => process.stdout.write(`${JSON.stringify({ ms: performance.now() - started, wireBytes, sseBytes })}\n`))
})
req.end()
