/**
 * End-to-end: mode refresh through the bundled action, for both providers, against their emulators and
 * a real OCI registry on loopback behind a counting proxy (every registry request, the action's and the
 * service's, passes through it). Unchanged costs one registry request; a new push moves the name; a
 * cancelled refresh leaves the name on the previous image.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startCacheService } from '../emulator/cache-service.ts'
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'
import { startTogetherEmulator, type TogetherEmulator } from '../emulator/together/index.ts'
import { runAction, startAction, type ActionResult } from '../helpers/run-action.ts'
import { gate, startServiceProxy, type ServiceProxy } from '../helpers/service-proxy.ts'
import { eventually } from '../helpers/wait.ts'

const TOKEN = 'tok-refresh-Qw81zz'

/** The registry behind a proxy that counts requests and can hold blob downloads (an import in flight). */
interface CountedRegistry {
  host: string
  pushUrl: string
  requests: () => number
  manifestRequests: () => number
  /** Holds every layer download until released: an import or build that is still pulling (configs pass). */
  holdLayers(configDigest: string): { release: () => void }
  reset(): void
}

async function countedRegistry(registry: RunningRegistry): Promise<CountedRegistry & { proxy: ServiceProxy }> {
  let held: { gate: ReturnType<typeof gate>; config: string } | undefined
  const proxy = await startServiceProxy(registry.url, (req) =>
    held && /\/blobs\//.test(req.path) && !req.path.endsWith(held.config) ? { kind: 'forward', before: held.gate.promise } : { kind: 'forward' },
  )
  return {
    proxy,
    host: new URL(proxy.url).host,
    pushUrl: registry.url,
    requests: () => proxy.requests.length,
    manifestRequests: () => proxy.requests.filter((r) => /\/manifests\//.test(r.path)).length,
    holdLayers(config) {
      const hold = gate()
      held = { gate: hold, config }
      return {
        release: () => {
          held = undefined
          hold.open()
        },
      }
    },
    reset() {
      proxy.requests.length = 0
    },
  }
}

async function pushed(reg: CountedRegistry, content: string, repository = 'team/base'): Promise<{ digest: string; config: string }> {
  const image = await pushImage(reg.pushUrl, repository, 'stable', { 'etc/release': `${content}\n` }, { base: 'base' })
  return { digest: image.digest, config: (image.manifest as { config: { digest: string } }).config.digest }
}
async function push(reg: CountedRegistry, content: string): Promise<string> {
  return (await pushed(reg, content)).digest
}

describe.skipIf(!registryAvailable() && !process.env.CI)('mode refresh', () => {
  let registry: RunningRegistry
  let reg: CountedRegistry & { proxy: ServiceProxy }
  beforeAll(async () => {
    registry = await startRegistry()
    reg = await countedRegistry(registry)
  })
  afterAll(async () => {
    await reg?.proxy.close()
    await registry?.close()
  })

  describe('ConTree: a tag follows the registry image', () => {
    let emulator: ContreeEmulator
    let cacheService: Awaited<ReturnType<typeof startCacheService>>
    beforeAll(async () => {
      emulator = await startContreeEmulator({ token: TOKEN, keepaliveMs: 200 })
      cacheService = await startCacheService()
    })
    afterAll(async () => {
      await emulator?.close()
      await cacheService?.close()
    })
    beforeEach(() => {
      emulator.reset()
      reg.reset()
    })

    const imports = () => emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/images/import')
    const refresh = (tag: string, extra: Record<string, string> = {}) =>
      startAction({ inputs: { 'api-url': emulator.url, token: TOKEN, mode: 'refresh', image: `${reg.host}/team/base:stable`, tag, ...extra }, env: cacheService.env() })
    async function tagHolder(tag: string): Promise<string | null> {
      const res = await fetch(`${emulator.url}/v1/inspect/?tag=${encodeURIComponent(tag)}`, { headers: { authorization: `Bearer ${TOKEN}` }, redirect: 'manual' })
      await res.arrayBuffer()
      return res.status === 302 ? (res.headers.get('location') ?? '').replace(/\/$/, '') : null
    }
    const ok = (result: ActionResult) => expect(result.exitCode, result.stdout + result.stderr).toBe(0)

    it('imports and tags on the first run, costs one registry request when unchanged, and moves the tag when a new image is pushed', async () => {
      const first = await push(reg, 'one')
      const initial = await refresh('base:nightly').done
      ok(initial)
      expect(initial.outputs).toMatchObject({ changed: 'true', digest: first, 'previous-digest': '', 'previous-image-id': '' })
      const firstImage = initial.outputs['image-id'] as string
      expect(await tagHolder('base:nightly')).toBe(firstImage)

      emulator.reset()
      reg.reset()
      const same = await refresh('base:nightly').done
      ok(same)
      expect(reg.requests()).toBe(1)
      expect(reg.manifestRequests()).toBe(1)
      expect(imports()).toHaveLength(0)
      expect(emulator.requests.filter((r) => r.method !== 'GET')).toEqual([])
      // Decided from the tag and the record alone: no image is looked up by id (the import cache path would).
      expect(emulator.requests.filter((r) => /^\/v1\/(inspect|images)\/[0-9a-f-]{36}/.test(r.path))).toEqual([])
      expect(same.stdout).toContain('Nothing was imported or built.')
      expect(same.outputs).toMatchObject({ changed: 'false', digest: first, 'previous-digest': first, 'image-id': firstImage })
      expect(same.summary).toMatch(/unchanged since \d{4}-\d\d-\d\d \d\d:\d\d UTC/)

      const second = await push(reg, 'two')
      emulator.reset()
      const moved = await refresh('base:nightly').done
      ok(moved)
      expect(imports()).toHaveLength(1)
      expect(moved.outputs).toMatchObject({ changed: 'true', digest: second, 'previous-digest': first, 'previous-image-id': firstImage })
      expect(moved.outputs['image-id']).not.toBe(firstImage)
      expect(await tagHolder('base:nightly')).toBe(moved.outputs['image-id'])
      expect(moved.summary).toContain(`\`${first}\` → \`${second}\``)
    })

    it('refreshes a Dockerfile through its build: an unchanged base builds nothing and keeps the tag, a new base moves it', async () => {
      await pushed(reg, 'df-one', 'team/dfbase')
      const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'refresh-df-'))
      fs.writeFileSync(path.join(workspace, 'Dockerfile'), `FROM ${reg.host}/team/dfbase:stable\nRUN cat /etc/release > /release.txt\n`)
      const refreshDockerfile = () =>
        runAction({ workspace, inputs: { 'api-url': emulator.url, token: TOKEN, mode: 'refresh', dockerfile: 'Dockerfile', tag: 'app:nightly' }, env: cacheService.env() })
      const spawns = () => emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/instances')

      const first = await refreshDockerfile()
      ok(first)
      expect(first.outputs.changed).toBe('true')
      const firstImage = first.outputs['image-id'] as string
      expect(await tagHolder('app:nightly')).toBe(firstImage)

      emulator.reset()
      const same = await refreshDockerfile()
      ok(same)
      expect(spawns()).toHaveLength(0)
      expect(imports()).toHaveLength(0)
      expect(same.outputs).toMatchObject({ changed: 'false', 'image-id': firstImage, digest: first.outputs.digest, 'previous-digest': first.outputs.digest })
      expect(same.summary).toMatch(/unchanged since \d{4}-\d\d-\d\d \d\d:\d\d UTC/)

      await pushed(reg, 'df-two', 'team/dfbase')
      emulator.reset()
      const moved = await refreshDockerfile()
      ok(moved)
      expect(spawns()).toHaveLength(1)
      expect(moved.outputs).toMatchObject({ changed: 'true', 'previous-image-id': firstImage, 'previous-digest': first.outputs.digest })
      expect(moved.outputs.digest).not.toBe(first.outputs.digest)
      expect(await tagHolder('app:nightly')).toBe(moved.outputs['image-id'])
      fs.rmSync(workspace, { recursive: true, force: true })
    })

    it('two tags following one reference each get an image: the second one a copy, so neither takes the other', async () => {
      await pushed(reg, 'two-names', 'team/shared')
      const image = `${reg.host}/team/shared:stable`
      const first = await refresh('shared:a', { image }).done
      ok(first)
      const second = await refresh('shared:b', { image }).done
      ok(second)
      expect(second.outputs['image-id']).not.toBe(first.outputs['image-id'])
      expect(await tagHolder('shared:a')).toBe(first.outputs['image-id'])
      expect(await tagHolder('shared:b')).toBe(second.outputs['image-id'])
      expect(second.stdout).toContain('already carries the tag shared:a')
      // And each one is unchanged the next night.
      const again = await refresh('shared:b', { image }).done
      expect(again.outputs).toMatchObject({ changed: 'false', 'image-id': second.outputs['image-id'] })
    })

    it('a refresh cancelled while it imports leaves the tag on the previous image', async () => {
      await push(reg, 'cancel-one')
      const initial = await refresh('base:cancel').done
      ok(initial)
      const previous = initial.outputs['image-id'] as string

      const next = await pushed(reg, 'cancel-two')
      emulator.reset()
      reg.reset()
      const hold = reg.holdLayers(next.config)
      try {
        const running = refresh('base:cancel')
        await running.waitForStdout(/::group::Import /)
        await eventually(() => reg.proxy.requests.some((r) => /\/blobs\//.test(r.path) && !r.path.endsWith(next.config)), 'the import pulling layers')
        running.cancel()
        const result = await running.done
        expect(result.exitCode).not.toBe(0)
        expect(result.stdout).toMatch(/cancelled/i)
        expect(emulator.requests.filter((r) => r.method === 'DELETE' && r.path.startsWith('/v1/operations/'))).toHaveLength(1)
        expect(emulator.requests.filter((r) => r.path.endsWith('/tag'))).toEqual([])
      } finally {
        hold.release()
      }
      expect(await tagHolder('base:cancel')).toBe(previous)
    })
  })

  describe('Together: an alias follows the registry image', () => {
    let emu: TogetherEmulator
    beforeAll(async () => {
      emu = await startTogetherEmulator({ log: () => undefined, workspaceDir: '/tmp' })
    })
    afterAll(async () => {
      await emu?.close()
    })
    beforeEach(() => {
      emu.reset()
      reg.reset()
    })

    const refresh = (alias: string, extra: Record<string, string> = {}) =>
      startAction({
        inputs: { provider: 'together', 'api-url': emu.apiUrl, 'builder-url': emu.builderUrl, token: emu.apiKey, mode: 'refresh', image: `${reg.host}/team/base:stable`, tag: alias, ...extra },
      })
    const aliased = (alias: string) => emu.snapshots().find((s) => s.aliases.includes(alias))
    const ok = (result: ActionResult) => expect(result.exitCode, result.stdout + result.stderr).toBe(0)

    it('builds and aliases on the first run, costs one registry request when unchanged, then moves the alias and retires the previous snapshot', async () => {
      const first = await push(reg, 'together-one')
      const initial = await refresh('base-nightly').done
      ok(initial)
      expect(initial.outputs).toMatchObject({ changed: 'true', digest: first })
      const firstSnapshot = initial.outputs['image-id'] as string
      expect(aliased('base-nightly')?.id).toBe(firstSnapshot)

      reg.reset()
      emu.reset()
      const buildsBefore = emu.builds().length
      const same = await refresh('base-nightly').done
      ok(same)
      expect(reg.requests()).toBe(1)
      expect(emu.builds()).toHaveLength(buildsBefore)
      // Decided from the alias alone: no snapshot is searched by digest (the build path would).
      expect(emu.requests.filter((r) => r.method !== 'GET' || r.path === '/v1/snapshots')).toEqual([])
      expect(same.stdout).toContain('Nothing was imported or built.')
      expect(same.outputs).toMatchObject({ changed: 'false', digest: first, 'image-id': firstSnapshot })
      expect(same.summary).toMatch(/unchanged since \d{4}-\d\d-\d\d \d\d:\d\d UTC/)

      const second = await push(reg, 'together-two')
      const moved = await runAction({
        inputs: { provider: 'together', 'api-url': emu.apiUrl, 'builder-url': emu.builderUrl, token: emu.apiKey, mode: 'refresh', image: `${reg.host}/team/base:stable`, tag: 'base-nightly', 'retire-previous': 'true' },
      })
      ok(moved)
      expect(moved.outputs).toMatchObject({ changed: 'true', digest: second, 'previous-digest': first, 'previous-image-id': firstSnapshot })
      expect(aliased('base-nightly')?.id).toBe(moved.outputs['image-id'])
      expect(emu.snapshots().find((s) => s.id === firstSnapshot)?.retired).toBe(true)
    })

    it('refreshes a Dockerfile through its build: an unchanged base builds nothing and keeps the alias, a new base moves it', async () => {
      await pushed(reg, 'together-df-one', 'team/tdfbase')
      const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'refresh-tdf-'))
      fs.writeFileSync(path.join(workspace, 'Dockerfile'), `FROM ${reg.host}/team/tdfbase:stable\nRUN cat /etc/release\n`)
      const refreshDockerfile = () =>
        runAction({ workspace, inputs: { provider: 'together', 'api-url': emu.apiUrl, 'builder-url': emu.builderUrl, token: emu.apiKey, mode: 'refresh', dockerfile: 'Dockerfile', tag: 'app-nightly' } })

      const first = await refreshDockerfile()
      ok(first)
      expect(first.outputs.changed).toBe('true')
      const firstSnapshot = first.outputs['image-id'] as string
      expect(aliased('app-nightly')?.id).toBe(firstSnapshot)

      const buildsBefore = emu.builds().length
      const same = await refreshDockerfile()
      ok(same)
      expect(emu.builds()).toHaveLength(buildsBefore)
      expect(same.outputs).toMatchObject({ changed: 'false', 'image-id': firstSnapshot, digest: first.outputs.digest })
      expect(same.summary).toMatch(/unchanged since \d{4}-\d\d-\d\d \d\d:\d\d UTC/)

      await pushed(reg, 'together-df-two', 'team/tdfbase')
      const moved = await refreshDockerfile()
      ok(moved)
      expect(emu.builds()).toHaveLength(buildsBefore + 1)
      expect(moved.outputs).toMatchObject({ changed: 'true', 'previous-image-id': firstSnapshot, 'previous-digest': first.outputs.digest })
      expect(aliased('app-nightly')?.id).toBe(moved.outputs['image-id'])
      fs.rmSync(workspace, { recursive: true, force: true })
    })

    it('a refresh cancelled while it builds leaves the alias on the previous snapshot', async () => {
      await push(reg, 'together-cancel-one')
      const initial = await refresh('base-cancel').done
      ok(initial)
      const previous = initial.outputs['image-id'] as string

      const next = await pushed(reg, 'together-cancel-two')
      reg.reset()
      const hold = reg.holdLayers(next.config)
      try {
        const running = refresh('base-cancel')
        await running.waitForStdout(/::group::Build /)
        running.cancel()
        const result = await running.done
        expect(result.exitCode).not.toBe(0)
        expect(result.stdout).toMatch(/cancelled/i)
      } finally {
        hold.release()
      }
      expect(emu.counts().builds.cancelled).toBeGreaterThan(0)
      expect(aliased('base-cancel')?.id).toBe(previous)
      expect(emu.snapshots().find((s) => s.id === previous)?.retired).toBe(false)
      await eventually(() => emu.counts().builds.running === 0, 'no build left running')
    })
  })
})
