/**
 * The Together provider's named images (what mode refresh stands on) against the Together emulator and
 * a loopback registry: the alias tells what it points at and which manifest that snapshot was made
 * from; moving it is one upsert; retiring the previous snapshot spares one another alias still needs.
 */
import os from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RemoteWorkRegistry } from '../../src/cancel.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import type { ProviderContext } from '../../src/providers/types.ts'
import { TogetherProvider } from '../../src/providers/together/provider.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'
import { startTogetherEmulator, type TogetherEmulator } from '../emulator/together/index.ts'

describe.skipIf(!registryAvailable())('Together named images', () => {
  let registry: RunningRegistry
  let emu: TogetherEmulator
  beforeAll(async () => {
    registry = await startRegistry()
    emu = await startTogetherEmulator({ log: () => undefined, workspaceDir: '/tmp' })
  })
  afterAll(async () => {
    await emu?.close()
    await registry?.close()
  })

  /** Set up as mode refresh is: the tag input is the settings' alias, which an unnamed image must not get. */
  function setup(): { provider: TogetherProvider; ctx: ProviderContext } {
    const provider = new TogetherProvider({
      settings: { alias: 'named', apiUrl: emu.apiUrl, token: emu.apiKey, builderUrl: emu.builderUrl, keepAlive: false, architecture: 'amd64', cpu: 1, memoryBytes: 2 * 1024 ** 3 },
      userAgent: 'test',
      workspace: os.tmpdir(),
      archiveCompression: 1,
    })
    const ctx: ProviderContext = {
      log: new RemoteLog({ write: () => undefined, newToken: () => 'stoptoken123' }),
      signal: new AbortController().signal,
      registry: new RemoteWorkRegistry(() => undefined),
      report: { operations: [], sections: [] },
      debug: () => undefined,
    }
    return { provider, ctx }
  }

  it('finds what an alias holds and its manifest, moves it in one upsert, and retires the previous snapshot only when no alias needs it', async () => {
    const { provider, ctx } = setup()
    const reference = `${registry.host}/team/named:1`
    const one = await pushImage(registry.url, 'team/named', '1', { 'etc/release': 'one\n' }, { base: 'base' })
    const first = await provider.prepareImage({ kind: 'image', reference, noCache: false, manifestDigest: one.digest, unnamed: true }, ctx)
    expect(first.upstreamDigest).toBe(one.digest)
    expect(await provider.findNamed('named', reference, ctx.signal)).toBeNull()
    expect(await provider.moveName('named', first, ctx)).toEqual({ holderId: first.id, previousId: null })
    const found = await provider.findNamed('named', reference, ctx.signal)
    expect(found).toMatchObject({ id: first.id, upstreamDigest: one.digest })
    // Another reference's refresh does not take this snapshot's manifest for its own.
    expect((await provider.findNamed('named', `${registry.host}/team/other:1`, ctx.signal))?.upstreamDigest).toBeUndefined()

    const two = await pushImage(registry.url, 'team/named', '1', { 'etc/release': 'two\n' }, { base: 'base' })
    const second = await provider.prepareImage({ kind: 'image', reference, noCache: false, manifestDigest: two.digest, unnamed: true }, ctx)
    // Made unnamed: the alias is still on the first snapshot until it is moved.
    expect(emu.snapshots().find((s) => s.aliases.includes('named'))?.id).toBe(first.id)
    expect(await provider.moveName('named', second, ctx)).toEqual({ holderId: second.id, previousId: first.id })
    expect(emu.snapshots().find((s) => s.aliases.includes('named'))?.id).toBe(second.id)

    // A snapshot another alias still points at is kept; without one it is retired; twice is harmless.
    const pin = await fetch(`${emu.apiUrl}/v1/snapshots/${first.id}/aliases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${emu.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ alias: 'pinned' }),
    })
    expect(pin.status).toBe(204)
    expect(await provider.retireImage(first.id, ctx.signal)).toMatch(/kept: the alias\(es\) pinned still point at it/)
    expect(emu.snapshots().find((s) => s.id === first.id)?.retired).toBe(false)

    const unpin = await fetch(`${emu.apiUrl}/v1/snapshot-aliases/pinned`, { method: 'DELETE', headers: { authorization: `Bearer ${emu.apiKey}` } })
    expect(unpin.status).toBe(204)
    expect(await provider.retireImage(first.id, ctx.signal)).toBe(`snapshot ${first.id} retired`)
    expect(emu.snapshots().find((s) => s.id === first.id)?.retired).toBe(true)
    expect(await provider.retireImage(first.id, ctx.signal)).toBe(`snapshot ${first.id} was already retired`)
  })
})
