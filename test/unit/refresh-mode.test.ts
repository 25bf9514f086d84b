/**
 * Mode refresh against a scripted provider and a counting registry: what it asks, what it moves, what
 * it reports. The real services and the bundle are in test/e2e/refresh.test.ts.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { RemoteWorkRegistry } from '../../src/cancel.ts'
import type { Inputs } from '../../src/inputs.ts'
import { formatSince, runRefresh } from '../../src/modes/refresh.ts'
import type { RegistryRequest, RegistryTransport } from '../../src/image/resolve-digest.ts'
import type { ImageRequest, NamedImage, PreparedImage, Provider, ProviderContext } from '../../src/providers/types.ts'
import { parseFileCommands } from '../helpers/run-action.ts'

const OLD = `sha256:${'a'.repeat(64)}`
const NEW = `sha256:${'b'.repeat(64)}`
const REFERENCE = 'registry.example.com/team/base:1'
const SINCE = new Date('2026-11-30T03:17:00Z')

let outputFile: string
beforeEach(() => {
  outputFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'refresh-unit-')), 'output')
  fs.writeFileSync(outputFile, '')
  vi.stubEnv('GITHUB_OUTPUT', outputFile)
})
afterEach(() => {
  vi.unstubAllEnvs()
  fs.rmSync(path.dirname(outputFile), { recursive: true, force: true })
})
const outputs = (): Record<string, string> => parseFileCommands(fs.readFileSync(outputFile, 'utf8'))

function inputs(overrides: Partial<Inputs> = {}): Inputs {
  return {
    provider: 'together',
    mode: 'refresh',
    refresh: { retirePrevious: false },
    apiUrl: 'http://127.0.0.1:1',
    token: 't',
    image: { kind: 'registry', reference: REFERENCE },
    tag: 'base',
    noCache: false,
    deadlineSeconds: 600,
    ...overrides,
  } as Inputs
}

function registryAt(digest: string): RegistryTransport & { calls: RegistryRequest[] } {
  const calls: RegistryRequest[] = []
  return {
    calls,
    request: async (req) => {
      calls.push(req)
      return { status: 200, headers: { 'docker-content-digest': digest }, text: async () => '' }
    },
  }
}

interface Scripted {
  provider: Provider
  prepared: ImageRequest[]
  moves: Array<{ name: string; id: string }>
  records: NamedImage[]
  retired: string[]
}

function scripted(named: NamedImage | null, opts: { newId?: string; newDigest?: string; onPrepare?: () => void; retireFails?: boolean } = {}): Scripted {
  const prepared: ImageRequest[] = []
  const moves: Array<{ name: string; id: string }> = []
  const records: NamedImage[] = []
  const retired: string[] = []
  let holder = named?.id ?? null
  const provider: Provider = {
    name: 'together',
    endpoint: 'http://127.0.0.1:1',
    prepareImage: async (request) => {
      prepared.push(request)
      opts.onPrepare?.()
      const id = opts.newId ?? 'snap-new'
      return { id, ...(opts.newDigest ? { digest: opts.newDigest } : {}), cacheHit: false, outputs: { 'snapshot-id': id } } satisfies PreparedImage
    },
    run: async () => {
      throw new Error('a refresh runs nothing')
    },
    cancel: async () => 'cancelled',
    isAlive: async () => null,
    findNamed: async () => named,
    moveName: async (name, image) => {
      moves.push({ name, id: image.id })
      const previousId = holder
      holder = image.id
      return { holderId: image.id, previousId }
    },
    recordNamed: async (_name, _reference, record) => {
      records.push(record)
    },
    retireImage: async (id) => {
      if (opts.retireFails) throw new Error('service said no')
      retired.push(id)
      return `snapshot ${id} retired`
    },
  }
  return { provider, prepared, moves, records, retired }
}

function context(signal = new AbortController().signal): ProviderContext {
  return {
    log: { open: () => ({ write: () => undefined, note: () => undefined, end: () => undefined, tail: () => [] }), reportFailure: (_l, m) => m },
    signal,
    registry: new RemoteWorkRegistry(() => undefined),
    report: { operations: [], sections: [] },
    debug: () => undefined,
  }
}

describe('mode refresh', () => {
  it('unchanged upstream: one manifest request, nothing prepared or moved, "unchanged since" the recorded date', async () => {
    const s = scripted({ id: 'snap-old', upstreamDigest: OLD, since: SINCE })
    const registry = registryAt(OLD)
    const ctx = context()
    const result = await runRefresh(inputs(), s.provider, ctx, { transport: registry })
    expect(registry.calls).toHaveLength(1)
    expect(registry.calls[0]?.url).toBe('https://registry.example.com/v2/team/base/manifests/1')
    expect(s.prepared).toEqual([])
    expect(s.moves).toEqual([])
    expect(s.records).toEqual([])
    expect(result.changed).toBe(false)
    expect(outputs()).toMatchObject({ changed: 'false', digest: OLD, 'previous-digest': OLD, 'image-id': 'snap-old', 'previous-image-id': 'snap-old', tag: 'base' })
    expect(ctx.report.sections.join('\n')).toContain('unchanged since 2026-11-30 03:17 UTC')
  })

  it('changed upstream: prepares the image of the new digest without naming it, then moves the name and records the digest', async () => {
    const s = scripted({ id: 'snap-old', upstreamDigest: OLD, since: SINCE })
    const registry = registryAt(NEW)
    const ctx = context()
    const result = await runRefresh(inputs(), s.provider, ctx, { transport: registry, now: () => new Date('2026-12-03T01:00:00Z') })
    expect(registry.calls).toHaveLength(1)
    // The digest just resolved is handed over, so the provider asks the registry no second time.
    expect(s.prepared).toEqual([{ kind: 'image', reference: REFERENCE, noCache: false, deadlineMs: 600_000, manifestDigest: NEW, unnamed: true }])
    expect(s.moves).toEqual([{ name: 'base', id: 'snap-new' }])
    expect(s.records).toEqual([{ id: 'snap-new', upstreamDigest: NEW, since: new Date('2026-12-03T01:00:00Z') }])
    expect(s.retired).toEqual([])
    expect(result).toMatchObject({ changed: true, previousDigest: OLD, digest: NEW, previousImageId: 'snap-old', imageId: 'snap-new' })
    expect(outputs()).toMatchObject({ changed: 'true', digest: NEW, 'previous-digest': OLD, 'image-id': 'snap-new', 'previous-image-id': 'snap-old' })
    const summary = ctx.report.sections.join('\n')
    expect(summary).toContain('moved to a new image')
    expect(summary).toContain(`\`${OLD}\` → \`${NEW}\``)
    expect(summary).toContain('`snap-old` → `snap-new`')
  })

  it('retire-previous retires the image the name left, and a failed retirement is only a warning', async () => {
    const s = scripted({ id: 'snap-old', upstreamDigest: OLD })
    await runRefresh(inputs({ refresh: { retirePrevious: true } }), s.provider, context(), { transport: registryAt(NEW) })
    expect(s.retired).toEqual(['snap-old'])

    const failing = scripted({ id: 'snap-old', upstreamDigest: OLD }, { retireFails: true })
    const result = await runRefresh(inputs({ refresh: { retirePrevious: true } }), failing.provider, context(), { transport: registryAt(NEW) })
    expect(result.changed).toBe(true)
    expect(result.retired).toContain('could not be retired: service said no')
  })

  it('a name that already holds the image of the new digest (its record was lost) is reported unchanged and recorded again', async () => {
    const s = scripted({ id: 'snap-same' }, { newId: 'snap-same' })
    const result = await runRefresh(inputs({ refresh: { retirePrevious: true } }), s.provider, context(), { transport: registryAt(NEW) })
    expect(result.changed).toBe(false)
    expect(s.records).toHaveLength(1)
    expect(s.retired).toEqual([])
    expect(outputs().changed).toBe('false')
  })

  it('a name that points nowhere yet is given to the new image', async () => {
    const s = scripted(null)
    const result = await runRefresh(inputs(), s.provider, context(), { transport: registryAt(NEW) })
    expect(result).toMatchObject({ changed: true, imageId: 'snap-new' })
    expect(result.previousImageId).toBeUndefined()
    expect(outputs()['previous-image-id']).toBe('')
  })

  it('a signal while the new image is made leaves the name where it was', async () => {
    const controller = new AbortController()
    const s = scripted({ id: 'snap-old', upstreamDigest: OLD }, { onPrepare: () => controller.abort(new Error('SIGINT')) })
    await expect(runRefresh(inputs(), s.provider, context(controller.signal), { transport: registryAt(NEW) })).rejects.toThrow('SIGINT')
    expect(s.moves).toEqual([])
    expect(s.records).toEqual([])
  })

  it('a registry that cannot answer fails the refresh and names where the name stays', async () => {
    const s = scripted({ id: 'snap-old', upstreamDigest: OLD })
    const broken: RegistryTransport = { request: async () => ({ status: 404, headers: {}, text: async () => '' }) }
    await expect(runRefresh(inputs(), s.provider, context(), { transport: broken })).rejects.toThrow(/nothing was refreshed and base stays where it was/)
    expect(s.prepared).toEqual([])
  })

  describe('of a Dockerfile', () => {
    const dockerfileInputs = (): Inputs =>
      inputs({ image: undefined, workspace: '/ws', build: { dockerfile: '/ws/images/base.Dockerfile', context: '/ws', buildArgs: {}, target: 'runtime' } } as Partial<Inputs>)
    const BUILD_ONE = `sha256:${'1'.repeat(64)}`
    const BUILD_TWO = `sha256:${'2'.repeat(64)}`

    it('builds unnamed (the build digest covers the FROM digests); the same image back means unchanged since the recorded date', async () => {
      const s = scripted({ id: 'img-1', upstreamDigest: BUILD_ONE, since: SINCE }, { newId: 'img-1', newDigest: BUILD_ONE })
      const registry = registryAt(OLD)
      const ctx = context()
      const result = await runRefresh(dockerfileInputs(), s.provider, ctx, { transport: registry })
      // The provider resolves the FROM images itself, as every build does.
      expect(registry.calls).toEqual([])
      expect(s.prepared).toEqual([
        { kind: 'build', dockerfile: '/ws/images/base.Dockerfile', context: '/ws', buildArgs: {}, target: 'runtime', noCache: false, deadlineMs: 600_000, unnamed: true },
      ])
      expect(result).toMatchObject({ changed: false, reference: 'dockerfile:images/base.Dockerfile#runtime', digest: BUILD_ONE, previousDigest: BUILD_ONE, imageId: 'img-1' })
      expect(ctx.report.sections.join('\n')).toContain('unchanged since 2026-11-30 03:17 UTC')
      expect(outputs()).toMatchObject({ changed: 'false', digest: BUILD_ONE })
    })

    it('a new image (its base moved) takes the name', async () => {
      const s = scripted({ id: 'img-1', upstreamDigest: BUILD_ONE, since: SINCE }, { newId: 'img-2', newDigest: BUILD_TWO })
      const result = await runRefresh(dockerfileInputs(), s.provider, context(), { transport: registryAt(OLD) })
      expect(result).toMatchObject({ changed: true, digest: BUILD_TWO, previousDigest: BUILD_ONE, imageId: 'img-2', previousImageId: 'img-1' })
      expect(s.moves).toEqual([{ name: 'base', id: 'img-2' }])
      expect(s.records).toEqual([expect.objectContaining({ id: 'img-2', upstreamDigest: BUILD_TWO })])
    })
  })

  it('says when nobody recorded since when', () => {
    expect(formatSince(undefined)).toBe('an unrecorded date')
  })
})
