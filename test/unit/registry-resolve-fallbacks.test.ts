/**
 * The paths of resolveManifestDigest a well-behaved registry does not take: missing digest headers,
 * refused HEAD, odd challenges, transport failures. A scripted transport stands in for the network.
 */
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseAuthChallenges } from '../../src/image/auth-challenge.ts'
import { parseReference } from '../../src/image/reference.ts'
import {
  RegistryError,
  resolveManifestDigest,
  type RegistryRequest,
  type RegistryResponse,
  type RegistryTransport,
} from '../../src/image/resolve-digest.ts'

const DIGEST = `sha256:${'b2'.repeat(32)}`

type Reply = { status: number; headers?: Record<string, string>; body?: string } | Error

function scripted(...replies: Reply[]): RegistryTransport & { calls: RegistryRequest[] } {
  const calls: RegistryRequest[] = []
  return {
    calls,
    async request(req): Promise<RegistryResponse> {
      calls.push(req)
      const reply = replies.shift()
      if (reply === undefined) throw new Error(`unexpected request ${req.method} ${req.url}`)
      if (reply instanceof Error) throw reply
      return { status: reply.status, headers: reply.headers ?? {}, text: async () => reply.body ?? '' }
    },
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (e: unknown) => e,
  )
}

describe('parseAuthChallenges', () => {
  it('reads quoted values with commas and escaped quotes', () => {
    const [challenge] = parseAuthChallenges(
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push",error="say \\"hi\\""',
    )
    expect(challenge).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'https://auth.example.com/token',
        service: 'registry.example.com',
        scope: 'repository:a/b:pull,push',
        error: 'say "hi"',
      },
    })
  })

  it('splits several challenges and accepts unquoted values and spacing', () => {
    expect(parseAuthChallenges('Basic realm=Registry , Bearer realm="https://x/t", service=svc')).toEqual([
      { scheme: 'basic', params: { realm: 'Registry' } },
      { scheme: 'bearer', params: { realm: 'https://x/t', service: 'svc' } },
    ])
  })

  it('survives garbage', () => {
    expect(parseAuthChallenges('')).toEqual([])
    expect(() => parseAuthChallenges('="x", Bearer realm="unterminated')).not.toThrow()
  })
})

describe('resolveManifestDigest fallbacks', () => {
  const ref = parseReference('ghcr.io/org/app:1.0')

  it('hashes the manifest from a GET when HEAD has no digest header', async () => {
    const manifest = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    const transport = scripted({ status: 200 }, { status: 200, body: manifest })
    const digest = await resolveManifestDigest(ref, { transport })
    expect(digest).toBe(`sha256:${createHash('sha256').update(manifest).digest('hex')}`)
    expect(transport.calls.map((c) => c.method)).toEqual(['HEAD', 'GET'])
    expect(transport.calls[1]?.url).toBe('https://ghcr.io/v2/org/app/manifests/1.0')
  })

  it('falls back to GET when HEAD is not allowed, keeping the token', async () => {
    const transport = scripted(
      { status: 401, headers: { 'www-authenticate': 'Bearer realm="https://ghcr.io/token",service="ghcr.io"' } },
      { status: 200, body: '{"access_token":"tok-123"}' },
      { status: 405 },
      { status: 200, headers: { 'docker-content-digest': DIGEST }, body: '{}' },
    )
    expect(await resolveManifestDigest(ref, { transport })).toBe(DIGEST)
    expect(transport.calls[3]?.method).toBe('GET')
    expect(transport.calls[3]?.headers['authorization']).toBe('Bearer tok-123')
    // No scope in the challenge: ask for pull on the repository.
    expect(new URL(transport.calls[1]?.url ?? '').searchParams.get('scope')).toBe('repository:org/app:pull')
  })

  it('sends every manifest media type in Accept', async () => {
    const transport = scripted({ status: 200, headers: { 'docker-content-digest': DIGEST } })
    await resolveManifestDigest(ref, { transport })
    const accept = transport.calls[0]?.headers['accept'] ?? ''
    for (const type of [
      'application/vnd.oci.image.index.v1+json',
      'application/vnd.oci.image.manifest.v1+json',
      'application/vnd.docker.distribution.manifest.list.v2+json',
      'application/vnd.docker.distribution.manifest.v2+json',
    ]) {
      expect(accept).toContain(type)
    }
  })

  it('uses registry-1.docker.io for Docker Hub images', async () => {
    const transport = scripted({ status: 200, headers: { 'docker-content-digest': DIGEST } })
    await resolveManifestDigest(parseReference('python:3.12-slim'), { transport })
    expect(transport.calls[0]?.url).toBe('https://registry-1.docker.io/v2/library/python/manifests/3.12-slim')
  })

  it('retries only once: a second 401 is an access error', async () => {
    const challenge = { 'www-authenticate': 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nope:pull"' }
    const transport = scripted({ status: 401, headers: challenge }, { status: 200, body: '{"token":"anon"}' }, { status: 401, headers: challenge })
    const error = await rejection(resolveManifestDigest(parseReference('nope'), { transport }))
    expect(error).toBeInstanceOf(RegistryError)
    expect((error as RegistryError).kind).toBe('unauthorized')
    expect((error as RegistryError).message).toMatch(/does not exist or needs credentials/)
    expect(transport.calls).toHaveLength(3)
  })

  it('classifies 429 and 5xx, naming the registry and status', async () => {
    const limited = await rejection(resolveManifestDigest(ref, { transport: scripted({ status: 429 }) }))
    expect(limited).toMatchObject({ kind: 'rate-limited', status: 429, registry: 'ghcr.io' })
    const broken = (await rejection(resolveManifestDigest(ref, { transport: scripted({ status: 503 }) }))) as RegistryError
    expect(broken.kind).toBe('failed')
    expect(broken.message).toContain('ghcr.io')
    expect(broken.message).toContain('503')
  })

  it('wraps transport failures with the host and keeps the cause', async () => {
    const cause = new Error('connect ECONNREFUSED')
    const error = (await rejection(resolveManifestDigest(ref, { transport: scripted(cause) }))) as RegistryError
    expect(error.kind).toBe('unreachable')
    expect(error.message).toContain('ghcr.io')
    expect(error.cause).toBe(cause)
  })

  it('lets a cancellation through untouched', async () => {
    const controller = new AbortController()
    controller.abort()
    const abort = new DOMException('aborted', 'AbortError')
    const error = await rejection(resolveManifestDigest(ref, { transport: scripted(abort), signal: controller.signal }))
    expect(error).toBe(abort)
  })

  it('refuses to send credentials to a plain-http realm off loopback', async () => {
    const transport = scripted({ status: 401, headers: { 'www-authenticate': 'Bearer realm="http://auth.example.com/token"' } })
    const error = (await rejection(resolveManifestDigest(ref, { transport, username: 'u', password: 'pw-value' }))) as RegistryError
    expect(error.kind).toBe('protocol')
    expect(error.message).not.toContain('pw-value')
    expect(transport.calls).toHaveLength(1)
  })

  it('rejects a token response without a token', async () => {
    const transport = scripted(
      { status: 401, headers: { 'www-authenticate': 'Bearer realm="https://ghcr.io/token"' } },
      { status: 200, body: '{"nothing":true}' },
    )
    const error = (await rejection(resolveManifestDigest(ref, { transport }))) as RegistryError
    expect(error.kind).toBe('protocol')
  })

  it('does not understand an unknown challenge and says so', async () => {
    const transport = scripted({ status: 401, headers: { 'www-authenticate': 'Negotiate' } })
    const error = (await rejection(resolveManifestDigest(ref, { transport }))) as RegistryError
    expect(error.kind).toBe('unauthorized')
    expect(error.message).toContain('ghcr.io')
  })
})
