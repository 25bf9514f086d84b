// Helpers for the emulator's own tests: HTTP calls with bearer tokens and whole event streams
// (shared/test-http.ts: gzip decoded, streams read leniently), build contexts
// as real tar.gz archives, and the multipart submit exactly as the SDKs send it.
import { gzipSync } from 'node:zlib'
import type { Dispatcher } from 'undici'
import { afterAll, beforeAll } from 'vitest'
import { callUrl, readEventStream, type CallResult, type StreamResult } from '../shared/test-http.ts'
import { buildTar, type TarFiles } from '../tar-writer.ts'
import { startTogetherEmulator } from './index.ts'
import type { TogetherEmulator } from './types.ts'

export type { CallResult, StreamResult } from '../shared/test-http.ts'

export function call(
  url: string,
  method: Dispatcher.HttpMethod,
  opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<CallResult> {
  const headers = opts.token ? { ...opts.headers, authorization: `Bearer ${opts.token}` } : opts.headers
  return callUrl(url, method, { body: opts.body, headers })
}

/** Reads an event stream to its end (or its break); gzip is decoded leniently so a cut stream still shows. */
export function readStream(url: string, token: string | null, headers: Record<string, string> = {}): Promise<StreamResult> {
  return readEventStream(url, { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers })
}

/** The `data` of each complete event (comments and the unterminated tail left out). */
export function sseData(text: string): string[] {
  const blocks = text.split('\n\n')
  blocks.pop()
  return blocks
    .map((block) =>
      block
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n'),
    )
    .filter((data) => data !== '')
}

/** ANSI colour codes removed, as the SDKs strip them before showing progress. */
export function plain(line: string): string {
  return line.replace(/\x1b\[[0-9;]*m/g, '')
}

export function contextArchive(files: TarFiles): Uint8Array {
  return gzipSync(buildTar(files))
}

export interface SubmitFields {
  image_name?: string
  dockerfile?: string
  build_args?: string
  nydus_convert?: string
  cache_key?: string
  [other: string]: string | undefined
}

/** POST /builds with the SDK's form: text fields, then the context as `context.tar.gz` (application/gzip). */
export async function submitBuild(
  emu: TogetherEmulator,
  context: Uint8Array | null,
  fields: SubmitFields = {},
  token: string | null = emu.apiKey,
): Promise<CallResult> {
  const form = new FormData()
  const all: SubmitFields = { image_name: 'app:v1', dockerfile: 'Dockerfile', build_args: '{}', nydus_convert: 'true', ...fields }
  for (const [name, value] of Object.entries(all)) if (value !== undefined) form.append(name, value)
  if (context) form.append('context', new Blob([new Uint8Array(context)], { type: 'application/gzip' }), 'context.tar.gz')
  const res = await fetch(`${emu.builderUrl}/builds`, {
    method: 'POST',
    headers: token ? { authorization: `Bearer ${token}` } : {},
    body: form,
  })
  const body = Buffer.from(await res.arrayBuffer())
  return { status: res.status, headers: Object.fromEntries(res.headers), body, json: () => JSON.parse(body.toString('utf8')) }
}

/** Follows a build's log to its control event; returns the plain lines and the control object. */
export async function followBuild(emu: TogetherEmulator, buildId: string): Promise<{ lines: string[]; terminal: any }> {
  const stream = await readStream(`${emu.builderUrl}/builds/${buildId}/logs`, emu.apiKey)
  const data = sseData(stream.text)
  const last = data.at(-1)
  return { lines: data.slice(0, -1).map(plain), terminal: last ? JSON.parse(last) : null }
}

export const api = (emu: TogetherEmulator, method: Dispatcher.HttpMethod, path: string, body?: unknown) =>
  call(`${emu.apiUrl}/v1${path}`, method, { token: emu.apiKey, body })

/** Creates a sandbox and waits for it to run; returns its wire object. /wait may answer before it settles. */
export async function runningSandbox(emu: TogetherEmulator, snapshotId: string, extra: Record<string, unknown> = {}): Promise<any> {
  const created = await api(emu, 'POST', '/sandboxes', { snapshot_id: snapshotId, ...extra })
  if (created.status !== 201) throw new Error(`create sandbox: ${created.status} ${created.body}`)
  let sandbox = created.json()
  while (sandbox.status === 'starting') sandbox = (await api(emu, 'POST', `/sandboxes/${sandbox.id}/wait`)).json()
  if (sandbox.status !== 'running') throw new Error(`sandbox is ${sandbox.status}`)
  return sandbox
}

export const agent = (sandbox: any, method: Dispatcher.HttpMethod, path: string, body?: unknown, headers?: Record<string, string>) =>
  call(`${sandbox.agent.url}/api/v1${path}`, method, { token: sandbox.agent.token, body, ...(headers ? { headers } : {}) })

/** Runs a command to its end over the exec io stream; returns its frames. */
export async function execToEnd(sandbox: any, command: string, args: string[], extra: Record<string, unknown> = {}): Promise<{ frames: any[]; id: string }> {
  const created = await agent(sandbox, 'POST', '/execs', { command, args, ...extra })
  if (created.status !== 201) throw new Error(`create exec: ${created.status} ${created.body}`)
  const id = created.json().id as string
  const stream = await readStream(`${sandbox.agent.url}/api/v1/stream/execs/${id}/io`, sandbox.agent.token)
  return { id, frames: sseData(stream.text).map((data) => JSON.parse(data)) }
}

export async function waitUntil(probe: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * Registers a test file's hooks for an emulator with one running sandbox on `busybox:latest` (keepalives
 * every 50 ms, start-up notes silenced), closed after the file. `started` gets both once the sandbox runs.
 */
export function useRunningSandbox(started: (emu: TogetherEmulator, sandbox: any) => void): void {
  let emu: TogetherEmulator | undefined
  beforeAll(async () => {
    emu = await startTogetherEmulator({ keepaliveMs: 50, log: () => undefined })
    const snapshot = (await api(emu, 'POST', '/snapshots', { image: 'busybox:latest' })).json()
    started(emu, await runningSandbox(emu, snapshot.id))
  })
  afterAll(async () => {
    await emu?.close()
  })
}
