/**
 * The yardstick of the upload figure, in its own process: read every file of the list once into a
 * reused buffer and, with a URL, send those bytes as they are (no archive, no compression) as one
 * POST body to it, with backpressure. Prints {ms, bytes}.
 * Usage: node together-raw-files.ts <file with one absolute path per line> [url]
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs'
import { request } from 'node:http'

const [list, url] = process.argv.slice(2) as [string, string | undefined]
const paths = readFileSync(list, 'utf8').split('\n').filter((line) => line !== '')
const started = performance.now()
let bytes = 0
if (url === undefined) {
  const buffer = Buffer.allocUnsafe(1024 * 1024)
  for (const file of paths) {
    const fd = openSync(file, 'r')
    try {
      for (let read = readSync(fd, buffer); read > 0; read = readSync(fd, buffer)) bytes += read
    } finally {
      closeSync(fd)
    }
  }
} else {
  const req = request(new URL(url), { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' } })
  const answered = new Promise<void>((resolve, reject) => {
    req.on('response', (res) => res.resume().on('end', resolve))
    req.on('error', reject)
  })
  for (const file of paths) {
    const fd = openSync(file, 'r')
    try {
      // A fresh buffer per write: the socket may still hold the previous one.
      for (let buffer = Buffer.allocUnsafe(1024 * 1024), read = readSync(fd, buffer); read > 0; buffer = Buffer.allocUnsafe(1024 * 1024), read = readSync(fd, buffer)) {
        bytes += read
        if (!req.write(buffer.subarray(0, read))) await new Promise((resolve) => req.once('drain', resolve))
      }
    } finally {
      closeSync(fd)
    }
  }
  req.end()
  await answered
}
process.stdout.write(`${JSON.stringify({ ms: performance.now() - started, bytes })}\n`)
