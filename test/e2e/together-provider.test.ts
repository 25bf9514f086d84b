/**
 * The Together provider end to end against the Together emulator (real builder, management API and
 * agents over real sockets) and a real OCI registry on loopback for the base images. It drives the
 * provider module directly, the way main does: one registry of live work, one log, one signal.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { RemoteWorkRegistry } from '../../src/cancel.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import type { PreparedImage, ProviderContext, RunRequest } from '../../src/providers/types.ts'
import { settingsForCleanup, type TogetherSettings } from '../../src/providers/together/inputs.ts'
import { TogetherProvider } from '../../src/providers/together/provider.ts'
import { RemoteBuildFailedError } from '../../src/providers/together/remote-build.ts'
import { createRegistryTransport } from '../../src/image/registry-transport.ts'
import type { RegistryTransport } from '../../src/image/resolve-digest.ts'
import type { LiveWork } from '../../src/state.ts'
import type { FilePlacement } from '../../src/providers/types.ts'
import { startTogetherEmulator, type TogetherEmulator } from '../emulator/together/index.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'
import { eventually } from '../helpers/wait.ts'

describe.skipIf(!registryAvailable())('Together provider against the emulator', () => {
  let registry: RunningRegistry
  let emu: TogetherEmulator
  let base: string
  const temps: string[] = []

  beforeAll(async () => {
    registry = await startRegistry()
    emu = await startTogetherEmulator({ log: () => undefined, workspaceDir: '/tmp' })
    base = (await pushImage(registry.url, 'team/base', '1', { 'etc/motd': 'base one\n' }, { base: 'base' })).reference
  })
  afterAll(async () => {
    await emu?.close()
    await registry?.close()
  })
  afterEach(async () => {
    emu.reset()
    while (temps.length > 0) rmSync(temps.pop() as string, { recursive: true, force: true })
    // Nothing a test started may outlive it.
    await eventually(() => emu.counts().processesAlive === 0 && emu.counts().execsRunning === 0, 'no process left behind')
  })

  interface Harness {
    provider: TogetherProvider
    ctx: ProviderContext
    controller: AbortController
    registry: RemoteWorkRegistry
    output: () => string
    registryRequests: () => number
  }

  function harness(overrides: Partial<TogetherSettings> = {}): Harness {
    let printed = ''
    let manifestRequests = 0
    const transport = createRegistryTransport()
    const counting: RegistryTransport = {
      request: (req) => {
        manifestRequests++
        return transport.request(req)
      },
    }
    const settings: TogetherSettings = {
      apiUrl: emu.apiUrl,
      token: emu.apiKey,
      builderUrl: emu.builderUrl,
      keepAlive: false,
      architecture: 'amd64',
      cpu: 1,
      memoryBytes: 2 * 1024 ** 3,
      repository: 'octo/app',
      commit: 'c0ffee',
      ...overrides,
    }
    const provider = new TogetherProvider({ settings, userAgent: 'test', workspace: os.tmpdir(), registryTransport: counting, archiveCompression: 1 })
    const controller = new AbortController()
    const liveWork = new RemoteWorkRegistry(() => undefined)
    const ctx: ProviderContext = {
      log: new RemoteLog({ write: (text) => (printed += text), newToken: () => 'stoptoken123' }),
      signal: controller.signal,
      registry: liveWork,
      report: { operations: [], sections: [] }, debug: () => undefined,
    }
    return { provider, ctx, controller, registry: liveWork, output: () => printed, registryRequests: () => manifestRequests }
  }

  function context(files: Record<string, string>, executable: string[] = []): { dockerfile: string; context: string } {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'together-ctx-'))
    temps.push(dir)
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
      writeFileSync(path.join(dir, rel), content)
    }
    for (const rel of executable) chmodSync(path.join(dir, rel), 0o755)
    return { dockerfile: path.join(dir, 'Dockerfile'), context: dir }
  }

  const run = (overrides: Partial<RunRequest> = {}): RunRequest => ({ command: 'true', shell: true, env: {}, timeoutSeconds: 60, keepAlive: false, deadlineMs: 120_000, ...overrides })

  /** What main does on a signal: cancel everything still live. */
  async function cancelLive(h: Harness): Promise<string[]> {
    return Promise.all(h.registry.live().map((work: LiveWork) => h.provider.cancel(work, 5000)))
  }

  it('builds a Dockerfile into a snapshot and runs a command in it, streaming its output, then leaves nothing running', async () => {
    const h = harness()
    // Paths relative to the working directory, so they resolve in the sandbox also where the emulator cannot chroot.
    const files = context({ Dockerfile: `FROM ${base}\nCOPY app /app\nWORKDIR /\nRUN cat etc/motd\n`, 'app/hello.sh': '#!/bin/sh\necho "hello $WHO"\necho oops >&2\nexit 3\n' }, ['app/hello.sh'])
    const image = await h.provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: false }, h.ctx)
    expect(image.cacheHit).toBe(false)
    expect(image.outputs['snapshot-id']).toBe(image.id)
    const snapshot = emu.snapshots().find((s) => s.id === image.id)
    expect(snapshot?.tags).toMatchObject({ 'sandbox-action.digest': image.digest, 'sandbox-action.repository': 'octo/app', 'sandbox-action.commit': 'c0ffee' })
    const build = emu.builds().at(-1)
    expect(build?.cacheKey).toMatch(/^sandbox-action\/octo\/app\//)
    expect(h.output()).toContain('base one')

    const outcome = await h.provider.run(image, run({ command: './hello.sh', cwd: '/app', env: { WHO: 'world' } }), h.ctx)
    expect(outcome).toMatchObject({ status: 'SUCCESS', exitCode: 3, timedOut: false })
    expect(outcome.tail).toEqual(['hello world', 'oops'])
    expect(h.output()).toMatch(/::group::Run: \.\/hello\.sh\n::stop-commands::stoptoken123\nhello world\noops\n::stoptoken123::\n::endgroup::\n/)
    expect(h.registry.live()).toEqual([])
    await eventually(() => emu.sandboxes().find((s) => s.id === outcome.outputs['sandbox-id'])?.status === 'terminated', 'the sandbox terminated')
  })

  it('finds an unchanged build again by its digest: no build, one manifest request', async () => {
    const files = context({ Dockerfile: `FROM ${base}\nRUN echo built\n` })
    const first = await harness().provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: false }, harness().ctx)
    const submitted = emu.counts().builds.submitted
    const h = harness()
    const again = await h.provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: false }, h.ctx)
    expect(again).toMatchObject({ id: first.id, cacheHit: true, digest: first.digest })
    expect(emu.counts().builds.submitted).toBe(submitted)
    expect(h.registryRequests()).toBe(1)

    // no-cache builds anyway; a new upstream base builds anyway.
    const forced = await h.provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: true }, h.ctx)
    expect(forced.cacheHit).toBe(false)
    await pushImage(registry.url, 'team/base', '1', { 'etc/motd': 'base two\n' }, { base: 'base' })
    try {
      const rebuilt = await h.provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: false }, h.ctx)
      expect(rebuilt.cacheHit).toBe(false)
      expect(rebuilt.digest).not.toBe(first.digest)
    } finally {
      await pushImage(registry.url, 'team/base', '1', { 'etc/motd': 'base one\n' }, { base: 'base' })
    }
  })

  it('makes a registry image into a snapshot through the builder, pinned to its digest, and reuses it', async () => {
    const h = harness({ alias: 'base-latest' })
    const image = await h.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, h.ctx)
    const build = emu.builds().at(-1)
    expect(build?.log.join('\n')).toContain(`${registry.host}/team/base@sha256:`)
    expect(emu.snapshots().find((s) => s.id === image.id)?.aliases).toContain('base-latest')
    const again = await harness().provider.prepareImage({ kind: 'image', reference: base, noCache: false }, harness().ctx)
    expect(again).toMatchObject({ id: image.id, cacheHit: true })
    const existing = await h.provider.prepareImage({ kind: 'existing', ref: '@base-latest' }, h.ctx)
    expect(existing.id).toBe(image.id)
  })

  it('fails a build with the builder\'s error and its last lines outside the group', async () => {
    const h = harness()
    const files = context({ Dockerfile: `FROM ${base}\nRUN echo about to fail && false\n` })
    const error = await h.provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: true }, h.ctx).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RemoteBuildFailedError)
    expect((error as Error).message).toMatch(/^The remote build failed: .*exit code: 1/)
    expect(h.output()).toMatch(/Last \d+ lines of output:\n::stop-commands::stoptoken123\n[\s\S]*about to fail/)
    expect(h.registry.live()).toEqual([])
  })

  it('prints every build log line once through 404s and a cut stream', async () => {
    const h = harness()
    emu.faults.add({ server: 'builder', path: '/logs$', times: 2, action: { kind: 'status', status: 404 } }, { server: 'builder', path: '/logs$', action: { kind: 'cut-stream', afterEvents: 4 } })
    const files = context({ Dockerfile: `FROM ${base}\nRUN echo one && echo two\nRUN echo three\n` })
    await h.provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: true }, h.ctx)
    const printed = h.output().split('\n')
    const log = emu.builds().at(-1)?.log ?? []
    for (const line of log) expect(printed.filter((p) => p === line)).toHaveLength(1)
  })

  it('cancelling during a build deletes it; nothing keeps running', async () => {
    const h = harness()
    const files = context({ Dockerfile: `FROM ${base}\nRUN echo start && sleep 30\n` })
    const pending = h.provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: true }, h.ctx).catch((error: unknown) => error)
    await eventually(() => emu.builds().some((b) => b.state === 'running' && b.log.some((l) => l.includes(' start'))), 'the build running its RUN')
    h.controller.abort(new Error('cancelled by SIGINT'))
    expect(await cancelLive(h)).toEqual(['build deleted'])
    expect(await pending).toEqual(new Error('cancelled by SIGINT'))
    await eventually(() => emu.counts().builds.running === 0, 'no build running')
  })

  it('cancelling during a run kills the command and terminates the sandbox', async () => {
    const h = harness()
    const image = await h.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, h.ctx)
    const pending = h.provider.run(image, run({ command: 'echo started; sleep 30' }), h.ctx).catch((error: unknown) => error)
    await eventually(() => h.output().includes('started\n'), 'the command running')
    h.controller.abort(new Error('cancelled by SIGTERM'))
    // Both in parallel, as main cancels: whichever comes second finds its work already gone.
    expect(await cancelLive(h)).toHaveLength(2)
    expect(await pending).toEqual(new Error('cancelled by SIGTERM'))
    await eventually(() => emu.counts().sandboxes.running === 0 && emu.counts().sandboxes.terminating === 0, 'every sandbox terminated')
  })

  it('kills a command at its timeout and reports it timed out', async () => {
    const h = harness()
    const image = await h.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, h.ctx)
    const outcome = await h.provider.run(image, run({ command: 'sleep 30', timeoutSeconds: 1 }), h.ctx)
    expect(outcome).toMatchObject({ status: 'SUCCESS', exitCode: null, timedOut: true })
    expect(h.registry.live()).toEqual([])
  })

  it('keeps a keep-alive sandbox running, handed over as done, with its ttl', async () => {
    const h = harness()
    const image = await h.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, h.ctx)
    const outcome = await h.provider.run(image, run({ command: 'echo ready', keepAlive: true, ttlSeconds: 600 }), h.ctx)
    const id = outcome.outputs['sandbox-id'] as string
    expect(emu.sandboxes().find((s) => s.id === id)?.status).toBe('running')
    expect(h.registry.all().find((w) => w.id === id)?.state).toBe('done')
    expect(h.registry.live()).toEqual([])
    const create = emu.requests.find((r) => r.method === 'POST' && r.path === '/v1/sandboxes')
    expect(create).toBeDefined()
    // A fresh provider, as post would make one: it finds the sandbox alive and ends it.
    const post = new TogetherProvider({ settings: settingsForCleanup(emu.apiKey, emu.apiUrl), userAgent: 'post', workspace: os.tmpdir() })
    const work: LiveWork = { provider: 'together', kind: 'sandbox', id, endpoint: emu.apiUrl, label: 'sandbox', state: 'live' }
    expect(await post.isAlive(work, AbortSignal.timeout(5000))).toBe(true)
    expect(await post.cancel(work, 5000)).toBe('terminate requested')
    await eventually(() => emu.sandboxes().find((s) => s.id === id)?.status === 'terminated', 'the kept sandbox terminated')
    expect(await post.isAlive(work, AbortSignal.timeout(5000))).toBe(false)
  })

  it('never makes a second sandbox or snapshot when a create answers 5xx after doing its work', async () => {
    const h = harness()
    emu.faults.add({ server: 'api', method: 'POST', path: '^/v1/snapshots$', action: { kind: 'status-after', status: 502 } })
    const snapshotsBefore = emu.snapshots().length
    const files = context({ Dockerfile: `FROM ${base}\nRUN echo unique-${Date.now()}\n` })
    const image = await h.provider.prepareImage({ kind: 'build', ...files, buildArgs: {}, noCache: false }, h.ctx)
    expect(emu.snapshots().length).toBe(snapshotsBefore + 1)
    expect(emu.snapshots().filter((s) => s.tags['sandbox-action.digest'] === image.digest).map((s) => s.id)).toEqual([image.id])

    emu.faults.add({ server: 'api', method: 'POST', path: '^/v1/sandboxes$', action: { kind: 'status-after', status: 500 } })
    const sandboxesBefore = emu.sandboxes().length
    const outcome = await h.provider.run(image, run({ command: 'echo once' }), h.ctx)
    expect(outcome).toMatchObject({ status: 'SUCCESS', exitCode: 0 })
    expect(emu.sandboxes().length).toBe(sandboxesBefore + 1)
  })

  it('streams a command\'s output exactly once through a cut exec stream', async () => {
    const h = harness()
    const image = await h.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, h.ctx)
    emu.faults.add({ server: 'agent', path: '/stream/execs/.*/io$', action: { kind: 'cut-stream', afterEvents: 3 } })
    const outcome = await h.provider.run(image, run({ command: 'for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.05; done' }), h.ctx)
    expect(outcome.exitCode).toBe(0)
    const body = h.output().split('::group::Run:')[1] ?? ''
    expect(body.match(/^line \d$/gm)).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6', 'line 7', 'line 8'])
  })

  it('reports a sandbox that fails to start with the reason\'s hint', async () => {
    const h = harness()
    const image = await h.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, h.ctx)
    emu.faults.add({ server: 'api', method: 'POST', path: '^/v1/sandboxes$', action: { kind: 'failed-to-start', reason: 'out_of_capacity' } })
    const outcome = await h.provider.run(image, run(), h.ctx)
    expect(outcome.status).toBe('FAILED')
    expect(outcome.error).toMatch(/failed to start \(out_of_capacity\): the service had no room/)
    expect(h.registry.live()).toEqual([])
  })

  it('ends a sandbox meant to be kept that never started in time', async () => {
    const h = harness()
    const image = await h.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, h.ctx)
    emu.faults.add({ server: 'api', method: 'POST', path: '^/v1/sandboxes$', action: { kind: 'slow-start', delayMs: 60_000 } })
    const outcome = await h.provider.run(image, run({ keepAlive: true, deadlineMs: 500 }), h.ctx)
    expect(outcome).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/did not start within the deadline/) })
    const id = outcome.outputs['sandbox-id']
    await eventually(() => emu.sandboxes().find((s) => s.id === id)?.status === 'terminated', 'the never-started sandbox terminated')
    expect(h.registry.live()).toEqual([])
  })

  it('places uploaded files through the agent with their modes', async () => {
    const h = harness()
    const image: PreparedImage = await h.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, h.ctx)
    const dir = mkdtempSync(path.join(os.tmpdir(), 'uploads-'))
    temps.push(dir)
    writeFileSync(path.join(dir, 'run.sh'), '#!/bin/sh\necho uploaded script ran\n')
    writeFileSync(path.join(dir, 'data.txt'), 'payload\n')
    const file = (name: string) => ({ absPath: path.join(dir, name), size: statSync(path.join(dir, name)).size, sha256: '' })
    const uploads: FilePlacement = {
      '/tmp/work/bin/run.sh': { file: file('run.sh'), mode: '0755', uid: 0, gid: 0 },
      '/tmp/work/data.txt': { file: file('data.txt'), mode: '0644', uid: 0, gid: 0 },
    }
    const outcome = await h.provider.run(image, run({ command: '/tmp/work/bin/run.sh && cat /tmp/work/data.txt', uploads }), h.ctx)
    expect(outcome.error).toBeNull()
    expect(outcome.exitCode).toBe(0)
    expect(outcome.tail).toEqual(['uploaded script ran', 'payload'])
  })
})
