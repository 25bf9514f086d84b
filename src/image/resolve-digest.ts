/**
 * Resolves a registry tag to the manifest digest it currently points at, so cache keys change when
 * the base image behind a tag (e.g. `python:3.12-slim`) is republished.
 *
 * It speaks the distribution API through a `RegistryTransport` instead of importing an HTTP client,
 * so the action keeps one HTTP layer (and one retry policy); tests pass an adapter over fetch.
 */
import { createHash } from 'node:crypto'
import { parseAuthChallenges, type AuthChallenge } from './auth-challenge.ts'
import { formatReference, isLoopbackHost, registryApiBase, type ImageReference } from './reference.ts'

export interface RegistryRequest {
  method: 'GET' | 'HEAD'
  url: string
  headers: Record<string, string>
  signal?: AbortSignal
}

export interface RegistryResponse {
  status: number
  /** Header names lower-case. */
  headers: Record<string, string | undefined>
  text(): Promise<string>
  /** The raw body; transports that lack it are read through text() (see responseBytes). */
  bytes?(): Promise<Uint8Array>
}

export interface RegistryTransport {
  request(req: RegistryRequest): Promise<RegistryResponse>
}

export interface ResolveOptions {
  transport: RegistryTransport
  username?: string
  password?: string
  signal?: AbortSignal
}

export type RegistryErrorKind = 'not-found' | 'unauthorized' | 'rate-limited' | 'unreachable' | 'protocol' | 'failed'

/** A registry could not tell us the digest. Messages never carry credentials or tokens. */
export class RegistryError extends Error {
  readonly kind: RegistryErrorKind
  readonly registry: string
  readonly reference: string
  readonly status: number | undefined
  constructor(kind: RegistryErrorKind, ref: ImageReference, message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RegistryError'
    this.kind = kind
    this.registry = ref.registry
    this.reference = ref.original
    this.status = status
  }
}

// Every manifest shape a tag may point at: multi-arch indexes first, as Docker sends them.
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

const DIGEST = /^sha256:[a-f0-9]{64}$/

export async function resolveManifestDigest(ref: ImageReference, opts: ResolveOptions): Promise<string> {
  if (ref.digest !== undefined) return ref.digest
  const session = openRegistrySession(ref, opts)
  const manifestUrl = `${registryApiBase(ref)}/v2/${ref.repository}/manifests/${encodeURIComponent(ref.tag ?? 'latest')}`
  let response = await session.send('HEAD', manifestUrl, { accept: MANIFEST_ACCEPT })

  // Some registries refuse HEAD or omit the digest header; the digest is then the hash of the body.
  if (response.status === 405 || (isOk(response.status) && !DIGEST.test(response.headers['docker-content-digest'] ?? ''))) {
    response = await session.send('GET', manifestUrl, { accept: MANIFEST_ACCEPT })
    if (isOk(response.status)) {
      const fromHeader = response.headers['docker-content-digest'] ?? ''
      if (DIGEST.test(fromHeader)) return fromHeader
      return `sha256:${createHash('sha256').update(await responseBytes(response)).digest('hex')}`
    }
  }

  if (isOk(response.status)) return response.headers['docker-content-digest'] as string
  throw registryFailure(ref, session.name, response)
}

/**
 * Requests to one repository of one registry, answering its auth challenge once (the bearer token or
 * basic credentials are reused for every later request of the session).
 */
export interface RegistrySession {
  /** `host/repository:tag` for messages. */
  readonly name: string
  send(method: 'GET' | 'HEAD', url: string, headers: Record<string, string>): Promise<RegistryResponse>
}

export function openRegistrySession(ref: ImageReference, opts: ResolveOptions): RegistrySession {
  const name = formatReference(ref)
  let authorization: string | undefined
  const raw = async (method: 'GET' | 'HEAD', url: string, headers: Record<string, string>): Promise<RegistryResponse> => {
    try {
      const req: RegistryRequest = { method, url, headers }
      if (opts.signal !== undefined) req.signal = opts.signal
      return await opts.transport.request(req)
    } catch (error) {
      // Cancellation is the caller's decision, not a registry failure: let it through untouched.
      if (opts.signal?.aborted === true) throw error
      const host = safeHost(url)
      throw new RegistryError('unreachable', ref, `Could not reach registry ${host} to resolve ${name}: ${describe(error)}`, undefined, {
        cause: error,
      })
    }
  }
  return {
    name,
    async send(method, url, headers) {
      const withAuth = (): Record<string, string> => (authorization === undefined ? headers : { ...headers, authorization })
      const response = await raw(method, url, withAuth())
      if (response.status !== 401) return response
      authorization = await authorize(ref, name, response, opts, raw)
      return raw(method, url, withAuth())
    },
  }
}

/** The body as bytes: transports that only offer text are read as UTF-8 (manifests and configs are JSON). */
export async function responseBytes(response: RegistryResponse): Promise<Uint8Array> {
  if (response.bytes) return response.bytes()
  return Buffer.from(await response.text(), 'utf8')
}

async function authorize(
  ref: ImageReference,
  name: string,
  challengeResponse: RegistryResponse,
  opts: ResolveOptions,
  send: (method: 'GET' | 'HEAD', url: string, headers: Record<string, string>) => Promise<RegistryResponse>,
): Promise<string> {
  const challenges = parseAuthChallenges(challengeResponse.headers['www-authenticate'] ?? '')
  const bearer = challenges.find((c) => c.scheme === 'bearer')
  const basic = challenges.find((c) => c.scheme === 'basic')
  const hasCredentials = opts.username !== undefined && opts.username !== ''

  if (bearer !== undefined) {
    const token = await fetchToken(ref, name, bearer, opts, send)
    return `Bearer ${token}`
  }
  if (basic !== undefined) {
    if (!hasCredentials) {
      throw new RegistryError('unauthorized', ref, `Registry ${ref.registry} requires credentials to read ${name}, and none were given`, 401)
    }
    return basicAuthorization(opts.username ?? '', opts.password ?? '')
  }
  throw new RegistryError(
    'unauthorized',
    ref,
    `Registry ${ref.registry} answered 401 for ${name} without a Bearer or Basic challenge the action understands`,
    401,
  )
}

async function fetchToken(
  ref: ImageReference,
  name: string,
  challenge: AuthChallenge,
  opts: ResolveOptions,
  send: (method: 'GET' | 'HEAD', url: string, headers: Record<string, string>) => Promise<RegistryResponse>,
): Promise<string> {
  const realm = challenge.params['realm']
  let realmUrl: URL
  try {
    realmUrl = new URL(realm ?? '')
    if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:') throw new Error('not http(s)')
  } catch {
    throw new RegistryError('protocol', ref, `Registry ${ref.registry} sent an unusable token realm in its challenge for ${name}`, 401)
  }
  const service = challenge.params['service']
  if (service !== undefined) realmUrl.searchParams.set('service', service)
  // The challenge's scope says what the registry wants; without one, ask for what we do: pull.
  const scopes = (challenge.params['scope'] ?? `repository:${ref.repository}:pull`).split(' ').filter((s) => s !== '')
  for (const scope of scopes) realmUrl.searchParams.append('scope', scope)

  const headers: Record<string, string> = { accept: 'application/json' }
  const hasCredentials = opts.username !== undefined && opts.username !== ''
  if (hasCredentials) {
    // Never send a password in clear text across the network; loopback is the one exception.
    if (realmUrl.protocol === 'http:' && !isLoopbackHost(realmUrl.host)) {
      throw new RegistryError(
        'protocol',
        ref,
        `Registry ${ref.registry} asks for credentials over plain http (${realmUrl.host}); refusing to send them`,
        401,
      )
    }
    headers['authorization'] = basicAuthorization(opts.username ?? '', opts.password ?? '')
  }

  const response = await send('GET', realmUrl.toString(), headers)
  if (response.status === 401 || response.status === 403) {
    throw new RegistryError(
      'unauthorized',
      ref,
      hasCredentials
        ? `Registry ${ref.registry} rejected the given credentials for ${name} (token service ${realmUrl.host} answered ${response.status})`
        : `Registry ${ref.registry} requires credentials to read ${name} (token service ${realmUrl.host} answered ${response.status})`,
      response.status,
    )
  }
  if (!isOk(response.status)) {
    throw new RegistryError('failed', ref, `Token service ${realmUrl.host} for registry ${ref.registry} answered ${response.status} for ${name}`, response.status)
  }
  let token: unknown
  try {
    const body = JSON.parse(await response.text()) as { token?: unknown; access_token?: unknown }
    token = body.token ?? body.access_token
  } catch {
    token = undefined
  }
  if (typeof token !== 'string' || token === '') {
    throw new RegistryError('protocol', ref, `Token service ${realmUrl.host} for registry ${ref.registry} returned no token for ${name}`, response.status)
  }
  return token
}

export function registryFailure(ref: ImageReference, name: string, response: RegistryResponse): RegistryError {
  const status = response.status
  switch (status) {
    case 404:
      return new RegistryError('not-found', ref, `Image ${name} does not exist: registry ${ref.registry} has no ${ref.repository}:${ref.tag ?? 'latest'}`, status)
    case 401:
    case 403:
      // Docker Hub answers 401 rather than 404 for a repository the token may not see, including
      // ones that do not exist, so say both.
      return new RegistryError(
        'unauthorized',
        ref,
        `Registry ${ref.registry} denied access to ${name} (${status}): the repository does not exist or needs credentials`,
        status,
      )
    case 429:
      return new RegistryError('rate-limited', ref, `Registry ${ref.registry} rate-limited the lookup of ${name} (429); try again later or log in`, status)
    default:
      return new RegistryError('failed', ref, `Registry ${ref.registry} answered ${status} when resolving ${name}`, status)
  }
}

function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
}

export function isOk(status: number): boolean {
  return status >= 200 && status < 300
}

function safeHost(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return '(invalid URL)'
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message || error.name
  return String(error)
}
