/**
 * The Together provider's previews against the emulator, driven the way the preview mode drives them:
 * what happens when two runs of one pull request race without a concurrency group.
 */
import os from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RemoteWorkRegistry } from '../../src/cancel.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import { TogetherProvider } from '../../src/providers/together/provider.ts'
import { PreviewSupersededError, type PreviewRequest, type ProviderContext } from '../../src/providers/types.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'
import { startTogetherEmulator, type TogetherEmulator } from '../emulator/together/index.ts'
import { eventually } from '../helpers/wait.ts'

describe.skipIf(!registryAvailable())('Together previews racing on one pull request', () => {
  let registry: RunningRegistry
  let emu: TogetherEmulator
  let base: string

  beforeAll(async () => {
    registry = await startRegistry()
    emu = await startTogetherEmulator({ log: () => undefined })
    base = (await pushImage(registry.url, 'team/base', '1', { 'srv/index.html': 'hi\n' }, { base: 'base' })).reference
  })
  afterAll(async () => {
    await emu?.close()
    await registry?.close()
  })

  function context(): { provider: TogetherProvider; ctx: ProviderContext; registry: RemoteWorkRegistry } {
    const provider = new TogetherProvider({
      settings: { apiUrl: emu.apiUrl, token: emu.apiKey, builderUrl: emu.builderUrl, keepAlive: false, architecture: 'amd64', cpu: 1, memoryBytes: 2 * 1024 ** 3, repository: 'acme/shop' },
      userAgent: 'test',
      workspace: os.tmpdir(),
    })
    const registry = new RemoteWorkRegistry(() => undefined)
    const ctx: ProviderContext = { log: new RemoteLog({ write: () => undefined, newToken: () => 'stoptoken123' }), signal: new AbortController().signal, registry, report: { operations: [], sections: [] }, debug: () => undefined }
    return { provider, ctx, registry }
  }

  const request = (overrides: Partial<PreviewRequest> = {}): PreviewRequest => ({ name: 'pr-3', pullRequest: 3, repository: 'acme/shop', commit: 'a'.repeat(40), deadlineMs: 60_000, ...overrides })
  const running = (): string[] => emu.sandboxes().filter((s) => s.status === 'running' || s.status === 'starting').map((s) => s.id)

  it('the newer run ends the older run\'s sandbox as it comes up; the older run stops as superseded, leaving the newer preview', async () => {
    const older = context()
    const image = await older.provider.prepareImage({ kind: 'image', reference: base, noCache: false }, older.ctx)
    // The older run waits for a port that never opens.
    const olderRun = older.provider.replacePreview(image, request({ start: { command: 'sleep 600', env: {} }, waitForPort: 9199 }), older.ctx)
    olderRun.catch(() => undefined)
    await eventually(() => running().length === 1 && emu.sandboxes()[0]?.status === 'running', 'the older preview sandbox running', 30_000)
    const olderSandbox = running()[0] as string

    const newer = context()
    const outcome = await newer.provider.replacePreview(image, request({ commit: 'b'.repeat(40) }), newer.ctx)
    expect(outcome.replaced).toEqual([{ what: 'sandbox', id: olderSandbox }])

    await expect(olderRun).rejects.toBeInstanceOf(PreviewSupersededError)
    await eventually(() => running().length === 1, 'only the newer preview left')
    expect(running()).toEqual([outcome.sandboxId])
    expect(older.registry.live()).toEqual([])

    await newer.provider.removePreview?.(request(), { what: 'sandbox', id: outcome.sandboxId as string }, 5000)
    await eventually(() => running().length === 0, 'nothing left')
  })
})
