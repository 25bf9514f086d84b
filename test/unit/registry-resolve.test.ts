/**
 * resolveManifestDigest against a REAL registry (Debian's docker-registry), directly and behind a
 * loopback proxy that enforces the bearer-token and basic flows of public registries.
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseReference } from '../../src/image/reference.ts'
import { RegistryError, resolveManifestDigest, type RegistryTransport } from '../../src/image/resolve-digest.ts'
import { startRegistryAuthProxy, type RegistryAuthProxy } from '../emulator/registry-auth-proxy.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'

/** The test's stand-in for the action's shared HTTP client: fetch, bodies read eagerly. */
function fetchTransport(): RegistryTransport & { calls: { method: string; url: string; headers: Record<string, string> }[] } {
  const calls: { method: string; url: string; headers: Record<string, string> }[] = []
  return {
    calls,
    async request(req) {
      calls.push({ method: req.method, url: req.url, headers: req.headers })
      const init: RequestInit = { method: req.method, headers: req.headers }
      if (req.signal !== undefined) init.signal = req.signal
      const response = await fetch(req.url, init)
      const body = await response.text()
      const headers: Record<string, string | undefined> = {}
      response.headers.forEach((value, name) => {
        headers[name] = value
      })
      return { status: response.status, headers, text: async () => body }
    },
  }
}

async function rejection(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(RegistryError)
  return error as RegistryError
}

if (!registryAvailable() && !process.env['CI']) {
  console.warn('Skipping registry tests: install the registry with `apt-get update && apt-get install -y docker-registry`')
}

describe.skipIf(!registryAvailable() && !process.env['CI'])('resolveManifestDigest against a real registry', () => {
  let registry: RunningRegistry
  let v1Digest: string
  let latestDigest: string

  beforeAll(async () => {
    registry = await startRegistry()
    v1Digest = (await pushImage(registry.url, 'team/app', 'v1', { 'etc/app.conf': 'v1\n' })).digest
    latestDigest = (await pushImage(registry.url, 'team/app', 'latest', { 'etc/app.conf': 'latest\n' })).digest
  })

  afterAll(async () => {
    await registry?.close()
  })

  describe('direct', () => {
    it('resolves a tag to the digest the registry reports', async () => {
      const transport = fetchTransport()
      const digest = await resolveManifestDigest(parseReference(`${registry.host}/team/app:v1`), { transport })
      expect(digest).toBe(v1Digest)
      expect(transport.calls).toHaveLength(1)
      expect(transport.calls[0]?.method).toBe('HEAD')
      expect(transport.calls[0]?.url).toBe(`${registry.url}/v2/team/app/manifests/v1`)
      expect(transport.calls[0]?.headers['accept']).toContain('application/vnd.oci.image.index.v1+json')
    })

    it('resolves a missing tag as latest', async () => {
      const digest = await resolveManifestDigest(parseReference(`${registry.host}/team/app`), { transport: fetchTransport() })
      expect(digest).toBe(latestDigest)
    })

    it('follows a tag that is republished', async () => {
      const first = await pushImage(registry.url, 'team/moving', 'stable', { 'a.txt': 'one' })
      const ref = parseReference(`${registry.host}/team/moving:stable`)
      expect(await resolveManifestDigest(ref, { transport: fetchTransport() })).toBe(first.digest)
      const second = await pushImage(registry.url, 'team/moving', 'stable', { 'a.txt': 'two' })
      expect(second.digest).not.toBe(first.digest)
      expect(await resolveManifestDigest(ref, { transport: fetchTransport() })).toBe(second.digest)
    })

    it('returns a digest reference as is, without any request', async () => {
      const transport = fetchTransport()
      const digest = await resolveManifestDigest(parseReference(`${registry.host}/team/app:v1@${v1Digest}`), { transport })
      expect(digest).toBe(v1Digest)
      expect(transport.calls).toHaveLength(0)
    })

    it('says clearly when the tag does not exist', async () => {
      const error = await rejection(resolveManifestDigest(parseReference(`${registry.host}/team/app:nope`), { transport: fetchTransport() }))
      expect(error.kind).toBe('not-found')
      expect(error.status).toBe(404)
      expect(error.message).toContain('does not exist')
      expect(error.message).toContain('team/app:nope')
      expect(error.message).toContain(registry.host)
    })

    it('says clearly when the repository does not exist', async () => {
      const error = await rejection(resolveManifestDigest(parseReference(`${registry.host}/team/ghost:v1`), { transport: fetchTransport() }))
      expect(error.kind).toBe('not-found')
    })

    it('reports an unreachable registry with its host', async () => {
      const closed = await startRegistry()
      await closed.close()
      const error = await rejection(resolveManifestDigest(parseReference(`${closed.host}/team/app:v1`), { transport: fetchTransport() }))
      expect(error.kind).toBe('unreachable')
      expect(error.message).toContain(closed.host)
    })
  })

  describe('through an anonymous bearer-token proxy', () => {
    let proxy: RegistryAuthProxy
    beforeAll(async () => {
      proxy = await startRegistryAuthProxy(registry.url)
    })
    afterAll(async () => {
      await proxy?.close()
    })

    it('answers 401 with a bearer challenge to a request without a token', async () => {
      const response = await fetch(`${proxy.url}/v2/team/app/manifests/v1`, { method: 'HEAD' })
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toBe(
        `Bearer realm="${proxy.url}/token",service="test-registry",scope="repository:team/app:pull"`,
      )
    })

    it('fetches an anonymous token and retries once', async () => {
      const transport = fetchTransport()
      const before = proxy.tokenRequests
      const digest = await resolveManifestDigest(parseReference(`${proxy.host}/team/app:v1`), { transport })
      expect(digest).toBe(v1Digest)
      expect(proxy.tokenRequests).toBe(before + 1)
      expect(transport.calls.map((c) => c.method)).toEqual(['HEAD', 'GET', 'HEAD'])
      const tokenCall = new URL(transport.calls[1]?.url ?? '')
      expect(tokenCall.searchParams.get('service')).toBe('test-registry')
      expect(tokenCall.searchParams.get('scope')).toBe('repository:team/app:pull')
      expect(transport.calls[1]?.headers['authorization']).toBeUndefined()
      expect(transport.calls[2]?.headers['authorization']).toMatch(/^Bearer \S+$/)
    })

    it('streams authorised requests to the registry with their headers', async () => {
      const tokenResponse = await fetch(`${proxy.url}/token?service=test-registry&scope=repository:team/app:pull`)
      const { token, access_token: accessToken } = (await tokenResponse.json()) as { token: string; access_token: string }
      expect(accessToken).toBe(token)
      const auth = { authorization: `Bearer ${token}` }
      const manifest = await fetch(`${proxy.url}/v2/team/app/manifests/v1`, {
        headers: { ...auth, accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
      expect(manifest.status).toBe(200)
      expect(manifest.headers.get('docker-content-digest')).toBe(v1Digest)
      const layer = ((await manifest.json()) as { layers: { digest: string; size: number }[] }).layers[0]
      const blob = await fetch(`${proxy.url}/v2/team/app/blobs/${layer?.digest}`, { headers: auth })
      const bytes = new Uint8Array(await blob.arrayBuffer())
      expect(bytes.length).toBe(layer?.size)
      expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(layer?.digest)
      expect((await fetch(`${proxy.url}/v2/team/app/manifests/v1`, { headers: { authorization: 'Bearer forged' } })).status).toBe(401)
    })

    it('still reports a missing tag as not found', async () => {
      const error = await rejection(resolveManifestDigest(parseReference(`${proxy.host}/team/app:nope`), { transport: fetchTransport() }))
      expect(error.kind).toBe('not-found')
    })
  })

  describe('through a bearer-token proxy that requires credentials', () => {
    let proxy: RegistryAuthProxy
    beforeAll(async () => {
      proxy = await startRegistryAuthProxy(registry.url, { username: 'ci-bot', password: 's3cret-pw' })
    })
    afterAll(async () => {
      await proxy?.close()
    })

    it('sends basic credentials to the realm and resolves', async () => {
      const transport = fetchTransport()
      const digest = await resolveManifestDigest(parseReference(`${proxy.host}/team/app:v1`), {
        transport,
        username: 'ci-bot',
        password: 's3cret-pw',
      })
      expect(digest).toBe(v1Digest)
      expect(transport.calls[1]?.headers['authorization']).toBe(`Basic ${Buffer.from('ci-bot:s3cret-pw').toString('base64')}`)
    })

    it('rejects wrong credentials with a clear error that leaks nothing', async () => {
      const error = await rejection(
        resolveManifestDigest(parseReference(`${proxy.host}/team/app:v1`), {
          transport: fetchTransport(),
          username: 'ci-bot',
          password: 'wrong-password',
        }),
      )
      expect(error.kind).toBe('unauthorized')
      expect(error.message).toContain('rejected the given credentials')
      expect(error.message).toContain(proxy.host)
      expect(error.message).not.toContain('wrong-password')
      expect(error.message).not.toContain(Buffer.from('ci-bot:wrong-password').toString('base64'))
    })

    it('asks for credentials when none are given', async () => {
      const error = await rejection(resolveManifestDigest(parseReference(`${proxy.host}/team/app:v1`), { transport: fetchTransport() }))
      expect(error.kind).toBe('unauthorized')
      expect(error.message).toContain('requires credentials')
    })

    it('never puts an issued token into an error message', async () => {
      const error = await rejection(
        resolveManifestDigest(parseReference(`${proxy.host}/team/app:missing`), {
          transport: fetchTransport(),
          username: 'ci-bot',
          password: 's3cret-pw',
        }),
      )
      expect(error.kind).toBe('not-found')
      expect(proxy.issuedTokens.length).toBeGreaterThan(0)
      for (const token of proxy.issuedTokens) expect(error.message).not.toContain(token)
      expect(error.message).not.toContain('s3cret-pw')
    })
  })

  describe('through a proxy with a Basic challenge', () => {
    let proxy: RegistryAuthProxy
    beforeAll(async () => {
      proxy = await startRegistryAuthProxy(registry.url, { username: 'u', password: 'p', scheme: 'basic' })
    })
    afterAll(async () => {
      await proxy?.close()
    })

    it('retries with basic credentials', async () => {
      const transport = fetchTransport()
      const digest = await resolveManifestDigest(parseReference(`${proxy.host}/team/app:v1`), { transport, username: 'u', password: 'p' })
      expect(digest).toBe(v1Digest)
      expect(transport.calls.map((c) => c.method)).toEqual(['HEAD', 'HEAD'])
    })

    it('fails clearly without credentials, and with wrong ones', async () => {
      const none = await rejection(resolveManifestDigest(parseReference(`${proxy.host}/team/app:v1`), { transport: fetchTransport() }))
      expect(none.message).toContain('requires credentials')
      const wrong = await rejection(
        resolveManifestDigest(parseReference(`${proxy.host}/team/app:v1`), { transport: fetchTransport(), username: 'u', password: 'x' }),
      )
      expect(wrong.kind).toBe('unauthorized')
      expect(wrong.status).toBe(401)
    })
  })
})
