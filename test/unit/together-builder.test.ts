/**
 * The builder client against a scripted builder that parses the multipart form for real (undici's
 * form-data parser) and reads the context back with GNU tar; the submit is never replayed on a 5xx,
 * only where nothing reached the service (429), and then with the whole context regenerated.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { RequestTimeoutError } from '../../src/http/errors.ts'
import { RetryPolicy } from '../../src/http/retry.ts'
import { TogetherBuilder, type BuildSubmission } from '../../src/providers/together/builder.ts'
import { contextArchive } from '../../src/providers/together/context-archive.ts'
import { readContextTree } from '../../src/providers/together/context-tree.ts'
import { json, startScriptedServer, type Handler, type RecordedRequest, type ScriptedServer } from '../helpers/scripted-server.ts'

const servers: ScriptedServer[] = []
const temps: string[] = []
afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.close()
  while (temps.length > 0) rmSync(temps.pop() as string, { recursive: true, force: true })
})

async function builderWith(handler: Handler): Promise<{ builder: TogetherBuilder; server: ScriptedServer }> {
  const server = await startScriptedServer(handler)
  servers.push(server)
  const sleep = async () => undefined
  return { builder: new TogetherBuilder({ baseUrl: `${server.url}/`, token: 'secret-token', userAgent: 'test', retry: new RetryPolicy({ sleep }), sleep }), server }
}

async function form(req: RecordedRequest): Promise<FormData> {
  return new Response(req.body, { headers: { 'content-type': req.headers['content-type'] ?? '' } }).formData()
}

async function submission(extra: Partial<BuildSubmission> = {}): Promise<BuildSubmission> {
  const context = mkdtempSync(path.join(os.tmpdir(), 'builder-ctx-'))
  temps.push(context)
  mkdirSync(path.join(context, 'src'))
  writeFileSync(path.join(context, 'Dockerfile'), 'FROM busybox\nCOPY src /src\n')
  writeFileSync(path.join(context, 'src/a.txt'), 'alpha\n')
  const tree = await readContextTree(context, path.join(context, 'Dockerfile'))
  return { imageName: 'sandbox-action-x:y', dockerfile: 'Dockerfile', buildArgs: { VERSION: '1.2', EMPTY: '' }, nydus: true, context: () => contextArchive(tree, { compression: 6 }), ...extra }
}

describe('builder client', () => {
  it('submits the SDKs\' form, with the context as a streamed tar.gz file part', async () => {
    const { builder, server } = await builderWith((_req, res) => json(res, 202, { build_id: 'build-7' }))
    expect(await builder.submit(await submission({ cacheKey: 'sandbox-action/o/r/dockerfile' }))).toBe('build-7')
    const req = server.requests[0] as RecordedRequest
    expect(req.method).toBe('POST')
    expect(req.path).toBe('/builds')
    expect(req.headers.authorization).toBe('Bearer secret-token')
    expect(req.headers['transfer-encoding']).toBe('chunked')
    const data = await form(req)
    expect([...data.keys()]).toEqual(['image_name', 'dockerfile', 'build_args', 'nydus_convert', 'cache_key', 'context'])
    expect(data.get('image_name')).toBe('sandbox-action-x:y')
    expect(data.get('dockerfile')).toBe('Dockerfile')
    expect(JSON.parse(data.get('build_args') as string)).toEqual({ VERSION: '1.2', EMPTY: '' })
    expect(data.get('nydus_convert')).toBe('true')
    expect(data.get('cache_key')).toBe('sandbox-action/o/r/dockerfile')
    const file = data.get('context') as File
    expect(file.name).toBe('context.tar.gz')
    expect(file.type).toBe('application/gzip')
    const listing = execFileSync('tar', ['-tz', '-f', '-'], { input: Buffer.from(await file.arrayBuffer()), encoding: 'utf8' })
    expect(listing.trim().split('\n')).toEqual(['Dockerfile', 'src/', 'src/a.txt'])
  })

  it('leaves cache_key out entirely when there is none, so the builder\'s default applies', async () => {
    const { builder, server } = await builderWith((_req, res) => json(res, 202, { build_id: 'b' }))
    await builder.submit(await submission())
    expect((await form(server.requests[0] as RecordedRequest)).has('cache_key')).toBe(false)
  })

  it('never sends the submit again after a 5xx: it could start a second build', async () => {
    const { builder, server } = await builderWith((_req, res) => json(res, 502, { error: 'bad gateway' }))
    await expect(builder.submit(await submission())).rejects.toThrow(/HTTP 502/)
    expect(server.count('POST', /^\/builds$/)).toBe(1)
  })

  it('replays the submit after a 429, regenerating the whole context', async () => {
    let n = 0
    const { builder, server } = await builderWith((_req, res) => (n++ === 0 ? json(res, 429, { error: 'slow down' }, { 'Retry-After': '0' }) : json(res, 202, { build_id: 'b2' })))
    expect(await builder.submit(await submission())).toBe('b2')
    expect(server.count('POST', /^\/builds$/)).toBe(2)
    const [first, second] = await Promise.all(server.requests.map(form))
    const bytes = async (data: FormData | undefined) => Buffer.from(await (data?.get('context') as File).arrayBuffer())
    expect((await bytes(second)).equals(await bytes(first))).toBe(true)
  })

  it('refuses an answer without a build_id', async () => {
    const { builder } = await builderWith((_req, res) => json(res, 202, { id: 'nope' }))
    await expect(builder.submit(await submission())).rejects.toThrow(/named no build_id/)
  })

  it('reads a build\'s status, and a build the builder does not know as null', async () => {
    const { builder } = await builderWith((req, res) => (req.path === '/builds/b1' ? json(res, 200, { image_ref: 'r/ns/x:y' }) : json(res, 404, { error: 'not found' })))
    expect(await builder.status('b1')).toEqual({ image_ref: 'r/ns/x:y' })
    expect(await builder.status('b2')).toBeNull()
  })

  it('cancels with DELETE, takes 404 as already gone, and gives up within its time limit', async () => {
    const { builder, server } = await builderWith((req, res) => {
      if (req.path === '/builds/live') return json(res, 204, undefined)
      if (req.path === '/builds/gone') return json(res, 404, { error: 'unknown build' })
      // '/builds/stuck' never answers.
    })
    expect(await builder.cancel('live', { timeoutMs: 2000 })).toBe('cancelled')
    expect(await builder.cancel('gone', { timeoutMs: 2000 })).toBe('not-found')
    await expect(builder.cancel('stuck', { timeoutMs: 200 })).rejects.toThrow(RequestTimeoutError)
    expect(server.requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual(['/builds/live', '/builds/gone', '/builds/stuck'])
  })
})
