/**
 * Proves the cache-service emulator against the REAL @actions/cache (no mocks): if these pass,
 * e2e tests that run the bundled action against the emulator exercise the real cache code paths.
 */
import * as cache from '@actions/cache'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { READ_DENIED_MESSAGE, WRITE_DENIED_MESSAGE, startCacheService, type CacheService } from '../emulator/cache-service.ts'

const ENV_NAMES = [
  'ACTIONS_CACHE_SERVICE_V2',
  'ACTIONS_RESULTS_URL',
  'ACTIONS_RUNTIME_TOKEN',
  'ACTIONS_CACHE_URL',
  'ACTIONS_CACHE_MODE',
  'GITHUB_SERVER_URL',
  'RUNNER_TEMP',
]

describe('cache-service emulator with the real @actions/cache', () => {
  let service: CacheService
  let root: string
  let workdir: string
  let savedEnv: Record<string, string | undefined>
  let stdout: string[]
  // The cache version is a hash of the paths list, so each test saves and restores one list.
  let paths: string[]

  beforeAll(async () => {
    service = await startCacheService()
    root = await mkdtemp(join(tmpdir(), 'cache-emulator-test-'))
  })

  afterAll(async () => {
    await service.close()
    await rm(root, { recursive: true, force: true })
  })

  beforeEach(async () => {
    savedEnv = Object.fromEntries(ENV_NAMES.map((name) => [name, process.env[name]]))
    for (const name of ENV_NAMES) delete process.env[name]
    Object.assign(process.env, service.env())
    workdir = await mkdtemp(join(root, 'work-'))
    process.env['RUNNER_TEMP'] = await mkdtemp(join(root, 'runner-temp-'))
    paths = [join(workdir, 'payload')]
    await service.setMode('ok')
    stdout = []
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout.push(String(chunk))
      return true
    })
  })

  afterEach(() => {
    vi.restoreAllMocks()
    for (const [name, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })

  async function writePayload(files: Record<string, string>): Promise<void> {
    await rm(join(workdir, 'payload'), { recursive: true, force: true })
    for (const [name, content] of Object.entries(files)) {
      const path = join(workdir, 'payload', name)
      await mkdir(join(path, '..'), { recursive: true })
      await writeFile(path, content)
    }
  }

  const logged = (command: string): string[] => stdout.filter((line) => line.startsWith(`::${command}::`))

  it('exposes a v2 environment that does not look like GHES', () => {
    const env = service.env()
    expect(env['ACTIONS_CACHE_SERVICE_V2']).toBe('true')
    expect(env['ACTIONS_RESULTS_URL']).toBe(service.url)
    expect(service.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    expect(env['ACTIONS_RUNTIME_TOKEN']?.split('.')).toHaveLength(3)
    expect(env).not.toHaveProperty('GITHUB_SERVER_URL')
    expect(cache.isFeatureAvailable()).toBe(true)
  })

  it('saves a directory and restores it by exact key', async () => {
    await writePayload({ 'a.txt': 'alpha', 'nested/b.txt': 'bravo' })
    const id = await cache.saveCache(paths, 'exact-key-1')
    expect(id).toBeGreaterThan(0)
    expect(service.entries().map((e) => e.key)).toContain('exact-key-1')
    const entry = service.entries().find((e) => e.key === 'exact-key-1')
    expect(entry?.size).toBeGreaterThan(0)

    await rm(join(workdir, 'payload'), { recursive: true })
    const matched = await cache.restoreCache(paths, 'exact-key-1')
    expect(matched).toBe('exact-key-1')
    expect(await readFile(join(workdir, 'payload', 'a.txt'), 'utf8')).toBe('alpha')
    expect(await readFile(join(workdir, 'payload', 'nested', 'b.txt'), 'utf8')).toBe('bravo')

    const twirp = service.requests.filter((r) => r.path.startsWith('/twirp/')).map((r) => r.path.split('/').pop())
    expect(twirp).toEqual(expect.arrayContaining(['CreateCacheEntry', 'FinalizeCacheEntryUpload', 'GetCacheEntryDownloadURL']))
    expect(service.requests.some((r) => r.method === 'PUT' && r.path.startsWith('/upload/'))).toBe(true)
    expect(service.requests.some((r) => r.method === 'GET' && r.path.startsWith('/download/'))).toBe(true)
  })

  it('restores the newest entry a restore key is a prefix of', async () => {
    await writePayload({ 'v.txt': 'older' })
    expect(await cache.saveCache(paths, 'prefix-deps-aaa')).toBeGreaterThan(0)
    await writePayload({ 'v.txt': 'newer' })
    expect(await cache.saveCache(paths, 'prefix-deps-bbb')).toBeGreaterThan(0)

    await rm(join(workdir, 'payload'), { recursive: true })
    const matched = await cache.restoreCache(paths, 'prefix-deps-ccc', ['prefix-nothing-', 'prefix-deps-'])
    expect(matched).toBe('prefix-deps-bbb')
    expect(await readFile(join(workdir, 'payload', 'v.txt'), 'utf8')).toBe('newer')
  })

  it('prefers an exact match over a newer prefix match', async () => {
    await writePayload({ 'v.txt': 'exact' })
    expect(await cache.saveCache(paths, 'pick-x')).toBeGreaterThan(0)
    await writePayload({ 'v.txt': 'longer' })
    expect(await cache.saveCache(paths, 'pick-x-2')).toBeGreaterThan(0)
    await rm(join(workdir, 'payload'), { recursive: true })
    expect(await cache.restoreCache(paths, 'pick-x')).toBe('pick-x')
    expect(await readFile(join(workdir, 'payload', 'v.txt'), 'utf8')).toBe('exact')
  })

  it('misses when nothing matches, and when only the paths (version) differ', async () => {
    expect(await cache.restoreCache(paths, 'never-saved', ['never-'])).toBeUndefined()
    await writePayload({ 'x.txt': 'x' })
    expect(await cache.saveCache(paths, 'version-key')).toBeGreaterThan(0)
    expect(await cache.restoreCache([...paths, join(workdir, 'other')], 'version-key')).toBeUndefined()
  })

  it('refuses a second save of the same key with -1 and no throw', async () => {
    await writePayload({ 'd.txt': 'first' })
    expect(await cache.saveCache(paths, 'duplicate-key')).toBeGreaterThan(0)
    await writePayload({ 'd.txt': 'second' })
    expect(await cache.saveCache(paths, 'duplicate-key')).toBe(-1)
    expect(service.entries().filter((e) => e.key === 'duplicate-key')).toHaveLength(1)
  })

  it('keeps restore and save harmless while the service is down, and recovers on the same port', async () => {
    await writePayload({ 'up.txt': 'up' })
    expect(await cache.saveCache(paths, 'before-down')).toBeGreaterThan(0)

    await service.setMode('down')
    expect(await cache.restoreCache(paths, 'before-down')).toBeUndefined()
    expect(await cache.saveCache(paths, 'while-down')).toBe(-1)
    expect(logged('warning').join('')).toMatch(/ECONNREFUSED/)

    await service.setMode('ok')
    expect(service.env()['ACTIONS_RESULTS_URL']).toBe(service.url)
    expect(await cache.restoreCache(paths, 'before-down')).toBe('before-down')
  })

  it('reports a write denial as a warning and returns -1', async () => {
    await service.setMode('write-denied')
    await writePayload({ 'w.txt': 'w' })
    expect(await cache.saveCache(paths, 'denied-write')).toBe(-1)
    expect(logged('warning').join('')).toContain(WRITE_DENIED_MESSAGE)
    expect(service.entries().some((e) => e.key === 'denied-write')).toBe(false)
  })

  it('reports a read denial as a warning and misses', async () => {
    await writePayload({ 'r.txt': 'r' })
    expect(await cache.saveCache(paths, 'denied-read')).toBeGreaterThan(0)
    await service.setMode('read-denied')
    expect(await cache.restoreCache(paths, 'denied-read')).toBeUndefined()
    expect(logged('warning').join('')).toContain(READ_DENIED_MESSAGE.split(':')[0])
  })

  it('assembles block uploads in block-list order and serves them back', async () => {
    const twirp = (method: string, body: unknown): Promise<Response> =>
      fetch(`${service.url}twirp/github.actions.results.api.v1.CacheService/${method}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${service.env()['ACTIONS_RUNTIME_TOKEN']}` },
        body: JSON.stringify(body),
      })
    const created = (await (await twirp('CreateCacheEntry', { key: 'blocks', version: 'v1' })).json()) as { ok: boolean; signedUploadUrl?: string; signed_upload_url?: string }
    expect(created.ok).toBe(true)
    const uploadUrl = created.signed_upload_url ?? ''
    const id = (n: number): string => Buffer.from(`block-${n}`.padEnd(48, '0')).toString('base64')
    for (const [n, text] of [[1, 'world'], [0, 'hello ']] as const) {
      const put = await fetch(`${uploadUrl}&comp=block&blockid=${encodeURIComponent(id(n))}`, { method: 'PUT', body: text })
      expect(put.status).toBe(201)
      expect(put.headers.get('x-ms-request-id')).toBeTruthy()
    }
    const list = `<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>${id(0)}</Latest><Latest>${id(1)}</Latest></BlockList>`
    const committed = await fetch(`${uploadUrl}&comp=blocklist`, { method: 'PUT', headers: { 'content-type': 'application/xml' }, body: list })
    expect(committed.status).toBe(201)
    const finalized = (await (await twirp('FinalizeCacheEntryUpload', { key: 'blocks', version: 'v1', sizeBytes: '11' })).json()) as { ok: boolean; entry_id: string }
    expect(finalized).toMatchObject({ ok: true, entry_id: expect.stringMatching(/^\d+$/) })
    const found = (await (await twirp('GetCacheEntryDownloadURL', { key: 'blo', restoreKeys: [], version: 'v1' })).json()) as { ok: boolean; signed_download_url: string; matched_key: string }
    expect(found).toMatchObject({ ok: true, matched_key: 'blocks' })
    expect(await (await fetch(found.signed_download_url)).text()).toBe('hello world')
    expect(service.entries().find((e) => e.key === 'blocks')?.size).toBe(11)
    expect((await twirp('CreateCacheEntry', { key: 'blocks', version: 'v1' }).then((r) => r.json()))).toEqual({ ok: false })
  })

  it('skips the save without calling the service when ACTIONS_CACHE_MODE=read', async () => {
    process.env['ACTIONS_CACHE_MODE'] = 'read'
    await writePayload({ 'm.txt': 'm' })
    const before = service.requests.length
    expect(await cache.saveCache(paths, 'read-mode')).toBe(-1)
    expect(service.requests.length).toBe(before)
    expect(service.entries().some((e) => e.key === 'read-mode')).toBe(false)
  })
})
