/**
 * The yardstick for streaming: one plain HTTP read of an operation's event stream (the request the
 * action makes), gunzipped and counted, with no SSE parsing and nothing printed. Whatever the action
 * does on top of this (parsing, decoding, line assembly, sanitising, writing to its stdout) shows up
 * as the difference. The bench runs it in a process of its own (raw-read-process.ts).
 */
import { request } from 'node:http'
import { createGunzip } from 'node:zlib'

export interface RawRead {
  /** Bytes on the wire (compressed when the server gzips). */
  wireBytes: number
  /** Decoded SSE text bytes. */
  sseBytes: number
  /** From sending the request to the end of the decoded body. */
  ms: number
}

export function readEventLog(baseUrl: string, token: string, operationId: string, deadlineMs: number): Promise<RawRead> {
  const url = new URL(`${baseUrl}/v1/operations/${encodeURIComponent(operationId)}/events?follow=1`)
  return new Promise((resolve, reject) => {
    const started = performance.now()
    let wireBytes = 0
    let sseBytes = 0
    const req = request(url, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream', 'Accept-Encoding': 'gzip' },
    })
    const timer = setTimeout(() => req.destroy(new Error(`raw read still running after ${deadlineMs} ms`)), deadlineMs)
    const fail = (error: Error): void => {
      clearTimeout(timer)
      reject(error)
    }
    req.on('error', fail)
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        fail(new Error(`GET ${url.pathname} answered ${res.statusCode}`))
        return
      }
      res.on('data', (chunk: Buffer) => {
        wireBytes += chunk.length
      })
      res.on('error', fail)
      const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res
      body.on('data', (chunk: Buffer) => {
        sseBytes += chunk.length
      })
      body.on('error', fail)
      body.on('end', () => {
        clearTimeout(timer)
        resolve({ wireBytes, sseBytes, ms: performance.now() - started })
      })
    })
    req.end()
  })
}
