// Helpers for the emulator's own tests: HTTP calls against the emulator's base URL (shared/test-http.ts:
// gzip decoded, streams read leniently), an SSE frame parser, and waits for operations.
import type { Dispatcher } from 'undici'
import { callUrl, readEventStream, type CallOptions, type CallResult, type StreamResult } from '../shared/test-http.ts'

export { gunzipLeniently, type CallResult, type StreamResult } from '../shared/test-http.ts'

export function call(base: string, method: Dispatcher.HttpMethod, path: string, opts: CallOptions = {}): Promise<CallResult> {
  return callUrl(base + path, method, opts)
}

/** Reads a whole (possibly broken) stream; decodes gzip leniently so partial payloads are visible. */
export function readStream(base: string, path: string, headers: Record<string, string> = {}, opts: { signal?: AbortSignal } = {}): Promise<StreamResult> {
  return readEventStream(base + path, headers, opts)
}

export interface SseFrame {
  id: number | null
  event: string | null
  data: string
}

/** Splits SSE text into complete frames (comments dropped); the unterminated tail is returned apart. */
export function parseSse(text: string): { frames: SseFrame[]; tail: string; comments: string[] } {
  const blocks = text.split('\n\n')
  const tail = blocks.pop() ?? ''
  const frames: SseFrame[] = []
  const comments: string[] = []
  for (const block of blocks) {
    let id: number | null = null
    let event: string | null = null
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) comments.push(line)
      else if (line.startsWith('id: ')) id = Number(line.slice(4))
      else if (line.startsWith('event: ')) event = line.slice(7)
      else if (line.startsWith('data: ')) data.push(line.slice(6))
    }
    if (id !== null || event !== null || data.length > 0) frames.push({ id, event, data: data.join('\n') })
  }
  return { frames, tail, comments }
}

export async function spawn(base: string, body: Record<string, unknown>): Promise<string> {
  const res = await call(base, 'POST', '/v1/instances', { body: { image: 'tag:busybox:latest', ...body } })
  if (res.status !== 201) throw new Error(`spawn failed: ${res.status} ${res.body.toString()}`)
  return res.json().uuid as string
}

export async function waitTerminal(base: string, op: string): Promise<any> {
  for (;;) {
    const res = await call(base, 'GET', `/v1/operations/${op}`)
    const record = res.json()
    if (['SUCCESS', 'FAILED', 'CANCELLED'].includes(record.status)) return record
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export async function waitStatus(base: string, op: string, status: string): Promise<void> {
  for (;;) {
    const record = (await call(base, 'GET', `/v1/operations/${op}`)).json()
    if (record.status === status) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export function decodeRepr(repr: { value: string; encoding: string }): Buffer {
  return repr.encoding === 'base64' ? Buffer.from(repr.value, 'base64') : Buffer.from(repr.value, 'latin1')
}
