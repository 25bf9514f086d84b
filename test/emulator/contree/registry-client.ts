// A minimal OCI distribution client: manifests (index → the service's linux/amd64, nothing else),
// the image config, blobs with digest checks, and the registry auth dance (Bearer challenge or Basic).
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { SERVICE_PLATFORM } from '../test-images.ts'

export interface RegistryRef {
  /** host[:port] as written (docker.io maps to registry-1.docker.io). */
  host: string
  name: string
  /** A tag or a `sha256:` digest. */
  reference: string
  baseUrl: string
}

export interface Credentials {
  username?: string
  password?: string
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]
const INDEX_TYPES = new Set([MANIFEST_TYPES[0], MANIFEST_TYPES[2]])

function isLoopback(host: string): boolean {
  const bare = host.replace(/:\d+$/, '')
  return bare === 'localhost' || bare.startsWith('127.') || bare === '[::1]'
}

/** `docker://HOST[:PORT]/name:tag` or `…@sha256:…`; Docker Hub short forms are expanded. */
export function parseRegistryUrl(url: string): RegistryRef {
  let rest = url.replace(/^docker:\/\//, '')
  if (!rest) throw new Error(`invalid registry url: ${url}`)
  let host = 'docker.io'
  const first = rest.split('/')[0] as string
  if (rest.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first
    rest = rest.slice(first.length + 1)
  }
  let reference = 'latest'
  const at = rest.indexOf('@')
  if (at >= 0) {
    reference = rest.slice(at + 1)
    rest = rest.slice(0, at)
  } else {
    const colon = rest.lastIndexOf(':')
    if (colon > rest.lastIndexOf('/')) {
      reference = rest.slice(colon + 1)
      rest = rest.slice(0, colon)
    }
  }
  if (!rest) throw new Error(`invalid registry url: ${url}`)
  if (host === 'docker.io' && !rest.includes('/')) rest = `library/${rest}`
  const apiHost = host === 'docker.io' ? 'registry-1.docker.io' : host
  const scheme = isLoopback(apiHost) ? 'http' : 'https'
  return { host, name: rest, reference, baseUrl: `${scheme}://${apiHost}` }
}

function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ')
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase()
  const params: Record<string, string> = {}
  for (const match of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) {
    params[(match[1] as string).toLowerCase()] = match[2] as string
  }
  return { scheme, params }
}

async function registryError(response: Response, what: string): Promise<Error> {
  let detail = `${response.status} ${response.statusText}`
  try {
    const body = (await response.json()) as { errors?: Array<{ message?: string; code?: string }> }
    const first = body.errors?.[0]
    if (first?.message) detail = first.message
    else if (first?.code) detail = first.code.toLowerCase().replace(/_/g, ' ')
  } catch {
    // Not JSON: keep the status line.
  }
  return new Error(`${detail} (${what})`)
}

export interface Descriptor {
  mediaType?: string
  digest: string
  size?: number
  platform?: { os?: string; architecture?: string }
}

export interface PulledManifest {
  digest: string
  layers: Descriptor[]
  /** The image config's `config` (Env, WorkingDir, User …), null when the image has none. */
  config: Record<string, unknown> | null
}

export class RegistryClient {
  readonly ref: RegistryRef
  private readonly credentials: Credentials | undefined
  private readonly signal: AbortSignal
  private authorization: string | null = null

  constructor(ref: RegistryRef, credentials: Credentials | undefined, signal: AbortSignal) {
    this.ref = ref
    this.credentials = credentials
    this.signal = signal
  }

  private basic(): string | null {
    const { username, password } = this.credentials ?? {}
    if (!username && !password) return null
    return 'Basic ' + Buffer.from(`${username ?? ''}:${password ?? ''}`).toString('base64')
  }

  private async get(path: string, accept?: string): Promise<Response> {
    const send = () => {
      const headers: Record<string, string> = {}
      if (accept) headers.accept = accept
      if (this.authorization) headers.authorization = this.authorization
      return fetch(`${this.ref.baseUrl}${path}`, { headers, signal: this.signal })
    }
    let response = await send()
    if (response.status !== 401) return response
    const challenge = response.headers.get('www-authenticate')
    await response.body?.cancel()
    if (!challenge) throw new Error(`unauthorized: registry ${this.ref.host} refused the request`)
    const { scheme, params } = parseChallenge(challenge)
    if (scheme === 'basic') {
      this.authorization = this.basic()
      if (!this.authorization) throw new Error(`unauthorized: registry ${this.ref.host} wants credentials`)
    } else if (scheme === 'bearer' && params.realm) {
      this.authorization = `Bearer ${await this.fetchToken(params)}`
    } else {
      throw new Error(`unauthorized: unsupported challenge ${challenge}`)
    }
    response = await send()
    if (response.status === 401) {
      await response.body?.cancel()
      throw new Error(`unauthorized: registry ${this.ref.host} rejected the credentials`)
    }
    return response
  }

  private async fetchToken(params: Record<string, string>): Promise<string> {
    const realm = new URL(params.realm as string)
    if (params.service) realm.searchParams.set('service', params.service)
    realm.searchParams.set('scope', params.scope ?? `repository:${this.ref.name}:pull`)
    const headers: Record<string, string> = {}
    const basic = this.basic()
    if (basic) headers.authorization = basic
    const response = await fetch(realm, { headers, signal: this.signal })
    if (!response.ok) throw new Error(`unauthorized: token request to ${realm.origin} failed with ${response.status}`)
    const body = (await response.json()) as { token?: string; access_token?: string }
    const token = body.token ?? body.access_token
    if (!token) throw new Error('unauthorized: token endpoint returned no token')
    return token
  }

  private async manifest(reference: string): Promise<{ body: Buffer; mediaType: string; digest: string }> {
    const response = await this.get(`/v2/${this.ref.name}/manifests/${reference}`, MANIFEST_TYPES.join(', '))
    if (!response.ok) throw await registryError(response, `${this.ref.host}/${this.ref.name}:${reference}`)
    const body = Buffer.from(await response.arrayBuffer())
    const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: string }
    const mediaType = parsed.mediaType ?? response.headers.get('content-type')?.split(';')[0] ?? ''
    const digest = response.headers.get('docker-content-digest') ?? `sha256:${createHash('sha256').update(body).digest('hex')}`
    return { body, mediaType, digest }
  }

  async pullManifest(): Promise<PulledManifest> {
    let current = await this.manifest(this.ref.reference)
    if (INDEX_TYPES.has(current.mediaType)) {
      const index = JSON.parse(current.body.toString('utf8')) as { manifests?: Descriptor[] }
      const entries = index.manifests ?? []
      const { os, architecture } = SERVICE_PLATFORM
      const chosen = entries.find((m) => m.platform?.os === os && m.platform?.architecture === architecture)
      if (!chosen) {
        const offered = entries.map((m) => `${m.platform?.os ?? '?'}/${m.platform?.architecture ?? '?'}`).join(', ') || 'none'
        throw new Error(`image index of ${this.ref.name} has no ${os}/${architecture} image (it has: ${offered})`)
      }
      current = await this.manifest(chosen.digest)
    }
    const manifest = JSON.parse(current.body.toString('utf8')) as { layers?: Descriptor[]; config?: Descriptor; fsLayers?: unknown }
    if (!Array.isArray(manifest.layers)) throw new Error(`unsupported manifest type ${current.mediaType || 'unknown'}`)
    return { digest: current.digest, layers: manifest.layers, config: manifest.config ? await this.imageConfig(manifest.config.digest) : null }
  }

  private async imageConfig(digest: string): Promise<Record<string, unknown> | null> {
    const response = await this.get(`/v2/${this.ref.name}/blobs/${digest}`)
    if (!response.ok) throw await registryError(response, `config blob ${digest}`)
    const body = Buffer.from(await response.arrayBuffer())
    if (digest.startsWith('sha256:') && `sha256:${createHash('sha256').update(body).digest('hex')}` !== digest) {
      throw new Error(`config blob digest mismatch for ${digest}`)
    }
    const parsed = JSON.parse(body.toString('utf8')) as { config?: unknown }
    return typeof parsed.config === 'object' && parsed.config !== null ? (parsed.config as Record<string, unknown>) : null
  }

  /** Downloads a blob to `file`, verifying its sha256 digest. */
  async downloadBlob(digest: string, file: string): Promise<number> {
    const response = await this.get(`/v2/${this.ref.name}/blobs/${digest}`)
    if (!response.ok || !response.body) throw await registryError(response, `blob ${digest}`)
    const hash = createHash('sha256')
    let size = 0
    const source = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>)
    source.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      size += chunk.length
    })
    await pipeline(source, createWriteStream(file))
    const actual = `sha256:${hash.digest('hex')}`
    if (digest.startsWith('sha256:') && actual !== digest) {
      throw new Error(`blob digest mismatch: expected ${digest}, got ${actual}`)
    }
    return size
  }
}
