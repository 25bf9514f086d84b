/**
 * fetchImageConfig over an in-memory registry: an index followed to the service's platform, the
 * config blob's digest checked, and Docker's defaults for what a config leaves out.
 */
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { envRecord, fetchImageConfig, parseImageConfig, parsePlatform } from '../../src/image/image-config.ts'
import { parseReference } from '../../src/image/reference.ts'
import { RegistryError, type RegistryTransport } from '../../src/image/resolve-digest.ts'

const digestOf = (bytes: Uint8Array | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`

interface Served {
  transport: RegistryTransport
  calls: string[]
  put(path: string, value: unknown, mediaType?: string): string
  putRaw(path: string, bytes: string): void
}

function memoryRegistry(): Served {
  const blobs = new Map<string, { body: string; type: string }>()
  const calls: string[] = []
  return {
    calls,
    put(kind, value, mediaType = 'application/json') {
      const body = JSON.stringify(value)
      const digest = digestOf(body)
      blobs.set(`${kind}/${digest}`, { body, type: mediaType })
      return digest
    },
    putRaw(path, body) {
      blobs.set(path, { body, type: 'application/json' })
    },
    transport: {
      async request(req) {
        const path = new URL(req.url).pathname.replace(/^\/v2\/library\/app\//, '')
        calls.push(`${req.method} ${path}`)
        const found = blobs.get(path)
        if (!found) return { status: 404, headers: {}, text: async () => '' }
        return { status: 200, headers: { 'content-type': found.type }, text: async () => found.body }
      },
    },
  }
}

const ref = parseReference('app:1')
const amd64 = { os: 'linux', architecture: 'amd64' }

function image(registry: Served, config: Record<string, unknown>, architecture = 'amd64'): string {
  const configDigest = registry.put('blobs', { architecture, os: 'linux', config })
  return registry.put('manifests', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: 1 },
    layers: [],
  })
}

describe('fetchImageConfig', () => {
  it('reads Env, WorkingDir and User of a single-platform image: manifest then config, two requests', async () => {
    const registry = memoryRegistry()
    const digest = image(registry, { Env: ['PATH=/usr/local/go/bin:/usr/bin', 'GOPATH=/go'], WorkingDir: '/go', User: '1000:1000' })
    const fetched = await fetchImageConfig(ref, digest, { transport: registry.transport, platform: amd64 })
    expect(fetched.config).toMatchObject({ env: ['PATH=/usr/local/go/bin:/usr/bin', 'GOPATH=/go'], workingDir: '/go', user: '1000:1000' })
    expect(fetched.manifestDigest).toBe(digest)
    expect(registry.calls).toHaveLength(2)
  })

  it('follows an index to the platform the service runs, skipping attestations', async () => {
    const registry = memoryRegistry()
    const arm = image(registry, { User: 'arm' }, 'arm64')
    const amd = image(registry, { User: 'amd' })
    const index = registry.put(
      'manifests',
      {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { digest: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          { digest: digestOf('att'), platform: { os: 'unknown', architecture: 'unknown' } },
          { digest: amd, platform: { os: 'linux', architecture: 'amd64' } },
        ],
      },
      'application/vnd.oci.image.index.v1+json',
    )
    expect((await fetchImageConfig(ref, index, { transport: registry.transport, platform: amd64 })).config.user).toBe('amd')
    expect((await fetchImageConfig(ref, index, { transport: registry.transport, platform: { os: 'linux', architecture: 'arm64' } })).config.user).toBe('arm')
    const error = await fetchImageConfig(ref, index, { transport: registry.transport, platform: { os: 'linux', architecture: 's390x' } }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect((error as Error).message).toMatch(/no image for linux\/s390x.*offers linux\/arm64\/v8, linux\/amd64/)
  })

  it('refuses a config blob whose bytes do not match its digest', async () => {
    const registry = memoryRegistry()
    const digest = image(registry, { User: 'honest' })
    const manifest = JSON.parse((await (await registry.transport.request({ method: 'GET', url: `http://r/v2/library/app/manifests/${digest}`, headers: {} })).text())) as { config: { digest: string } }
    registry.putRaw(`blobs/${manifest.config.digest}`, JSON.stringify({ config: { User: 'root' } }))
    await expect(fetchImageConfig(ref, digest, { transport: registry.transport, platform: amd64 })).rejects.toThrow(/refusing it/)
  })
})

describe('parseImageConfig', () => {
  it('gives Docker defaults for what the config leaves out', () => {
    expect(parseImageConfig({})).toEqual({ env: [], workingDir: '', user: '', entrypoint: null, cmd: null, shell: null, onBuild: [] })
    expect(parseImageConfig({ config: { Shell: ['/bin/bash', '-c'], Cmd: ['node'] } })).toMatchObject({ shell: ['/bin/bash', '-c'], cmd: ['node'] })
  })

  it('env entries: the last one wins, = inside the value is kept', () => {
    expect(envRecord(['A=1', 'B=x=y', 'A=2', 'C'])).toEqual({ A: '2', B: 'x=y', C: '' })
  })

  it('platforms parse as os/arch[/variant]', () => {
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' })
    expect(parsePlatform('linux')).toBeNull()
  })
})
