/**
 * A builder stand-in for the upload figure, in its own process: it reads every request body to the
 * end, counts the bytes, and answers like the builder's submit. It prints its URL on the first line.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

const server = createServer((req, res) => {
  let bytes = 0
  req.on('data', (chunk: Buffer) => (bytes += chunk.length))
  req.on('end', () => {
    res.writeHead(202, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify({ build_id: `sink-${bytes}` }))
  })
})
server.listen(0, '127.0.0.1', () => process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}\n`))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
