/**
 * The run configuration of a registry image (Env, WorkingDir, User, Entrypoint, Cmd, Shell), read
 * over the distribution API: the manifest the digest names — an image index is followed to the one
 * platform the sandbox service runs — then the config blob, whose sha256 must equal its descriptor's
 * digest (a registry or proxy that serves other bytes is refused, never believed).
 */
import { createHash } from 'node:crypto'
import { registryApiBase, type ImageReference } from './reference.ts'
import {
  isOk,
  MANIFEST_ACCEPT,
  openRegistrySession,
  registryFailure,
  RegistryError,
  responseBytes,
  type RegistrySession,
  type ResolveOptions,
} from './resolve-digest.ts'

/** What a container of the image starts with, in the shape Docker's image config gives it. */
export interface ImageConfig {
  /** `NAME=value` entries, in order. */
  env: string[]
  /** "" when the image sets none. */
  workingDir: string
  /** "" when the image sets none (root). */
  user: string
  entrypoint: string[] | null
  cmd: string[] | null
  /** Docker's `Shell` (from a SHELL instruction); null = the default `/bin/sh -c`. */
  shell: string[] | null
  /** ONBUILD triggers the image carries, as instruction text. */
  onBuild: string[]
}

export const EMPTY_IMAGE_CONFIG: ImageConfig = { env: [], workingDir: '', user: '', entrypoint: null, cmd: null, shell: null, onBuild: [] }

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

export function formatPlatform(platform: Platform): string {
  return `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`
}

/** `linux/amd64`, `linux/arm64/v8` → Platform; null when it is not that shape. */
export function parsePlatform(text: string): Platform | null {
  const parts = text.trim().toLowerCase().split('/')
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => part === '')) return null
  const [os = '', architecture = '', variant] = parts
  return variant === undefined ? { os, architecture } : { os, architecture, variant }
}

export interface FetchedConfig {
  config: ImageConfig
  /** Digest of the config blob. */
  configDigest: string
  /** Digest of the platform's image manifest (equals the given digest when it was not an index). */
  manifestDigest: string
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'])
const DIGEST = /^sha256:[a-f0-9]{64}$/
const MAX_JSON_BYTES = 4 * 1024 * 1024

/**
 * Reads the config of the image `digest` names in `ref`'s repository. An index is followed to
 * `platform`; an image built for another platform only is an error naming what it offers.
 */
export async function fetchImageConfig(
  ref: ImageReference,
  digest: string,
  opts: ResolveOptions & { platform: Platform; session?: RegistrySession },
): Promise<FetchedConfig> {
  const session = opts.session ?? openRegistrySession(ref, opts)
  const base = `${registryApiBase(ref)}/v2/${ref.repository}`
  const readJson = async (url: string, accept: string, expected: string): Promise<{ value: Record<string, unknown>; mediaType: string }> => {
    const response = await session.send('GET', url, { accept })
    if (!isOk(response.status)) throw registryFailure(ref, session.name, response)
    const bytes = await responseBytes(response)
    if (bytes.byteLength > MAX_JSON_BYTES) throw new RegistryError('protocol', ref, `${url} is larger than ${MAX_JSON_BYTES} bytes`)
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
    if (actual !== expected) {
      throw new RegistryError('protocol', ref, `Registry ${ref.registry} served content with digest ${actual} for ${expected} (${session.name}); refusing it`)
    }
    let value: unknown
    try {
      value = JSON.parse(Buffer.from(bytes).toString('utf8'))
    } catch {
      throw new RegistryError('protocol', ref, `Registry ${ref.registry} served a ${expected} that is not JSON (${session.name})`)
    }
    if (typeof value !== 'object' || value === null) throw new RegistryError('protocol', ref, `${expected} of ${session.name} is not a JSON object`)
    const record = value as Record<string, unknown>
    const mediaType = typeof record.mediaType === 'string' ? record.mediaType : (response.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
    return { value: record, mediaType }
  }

  let manifestDigest = digest
  let manifest = await readJson(`${base}/manifests/${digest}`, MANIFEST_ACCEPT, digest)
  if (INDEX_TYPES.has(manifest.mediaType) || Array.isArray(manifest.value.manifests)) {
    manifestDigest = pickPlatform(ref, manifest.value, opts.platform)
    manifest = await readJson(`${base}/manifests/${manifestDigest}`, MANIFEST_ACCEPT, manifestDigest)
  }
  const descriptor = manifest.value.config as { digest?: unknown } | undefined
  const configDigest = typeof descriptor?.digest === 'string' ? descriptor.digest : ''
  if (!DIGEST.test(configDigest)) throw new RegistryError('protocol', ref, `The manifest ${manifestDigest} of ${session.name} names no sha256 config blob`)
  const blob = await readJson(`${base}/blobs/${configDigest}`, 'application/json, */*', configDigest)
  return { config: parseImageConfig(blob.value), configDigest, manifestDigest }
}

/** The manifest of an index for this platform (an arm64 entry without a variant counts as v8). */
export function pickPlatform(ref: ImageReference, index: Record<string, unknown>, platform: Platform): string {
  const entries = Array.isArray(index.manifests) ? (index.manifests as Array<Record<string, unknown>>) : []
  const offered: string[] = []
  const wantVariant = platform.variant ?? defaultVariant(platform.architecture)
  for (const entry of entries) {
    const p = entry.platform as Partial<Platform> | undefined
    if (!p || typeof p.os !== 'string' || typeof p.architecture !== 'string') continue
    // Attestation manifests sit in indexes as os "unknown"; they are not images.
    if (p.os === 'unknown') continue
    offered.push(formatPlatform({ os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) }))
    if (p.os !== platform.os || p.architecture !== platform.architecture) continue
    const variant = p.variant ?? defaultVariant(p.architecture)
    if (variant !== wantVariant) continue
    if (typeof entry.digest === 'string' && DIGEST.test(entry.digest)) return entry.digest
  }
  throw new RegistryError(
    'not-found',
    ref,
    `${ref.original} has no image for ${formatPlatform(platform)}, the platform the sandbox service runs (it offers ${offered.join(', ') || 'none'})`,
  )
}

function defaultVariant(architecture: string): string | undefined {
  return architecture === 'arm64' ? 'v8' : undefined
}

/** The `config` object of an OCI/Docker image config blob; missing fields become their Docker defaults. */
export function parseImageConfig(blob: Record<string, unknown>): ImageConfig {
  const config = (typeof blob.config === 'object' && blob.config !== null ? blob.config : {}) as Record<string, unknown>
  const strings = (value: unknown): string[] | null => (Array.isArray(value) && value.every((item) => typeof item === 'string') ? [...value] : null)
  const text = (value: unknown): string => (typeof value === 'string' ? value : '')
  return {
    env: strings(config.Env) ?? [],
    workingDir: text(config.WorkingDir),
    user: text(config.User),
    entrypoint: strings(config.Entrypoint),
    cmd: strings(config.Cmd),
    shell: strings(config.Shell),
    onBuild: strings(config.OnBuild) ?? [],
  }
}

/** A config read back from a cache entry (unknown JSON); undefined when it is not one. */
export function readCachedImageConfig(value: unknown): ImageConfig | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const v = value as Record<string, unknown>
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((item) => typeof item === 'string')
  const nullableStrings = (x: unknown): x is string[] | null => x === null || strings(x)
  if (!strings(v.env) || typeof v.workingDir !== 'string' || typeof v.user !== 'string') return undefined
  if (!nullableStrings(v.entrypoint) || !nullableStrings(v.cmd) || !nullableStrings(v.shell) || !strings(v.onBuild)) return undefined
  return { env: v.env, workingDir: v.workingDir, user: v.user, entrypoint: v.entrypoint, cmd: v.cmd, shell: v.shell, onBuild: v.onBuild }
}

/** `NAME=value` entries → a record; a later entry wins, an entry without `=` is an empty value. */
export function envRecord(env: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const entry of env) {
    const eq = entry.indexOf('=')
    if (eq === -1) out[entry] = ''
    else out[entry.slice(0, eq)] = entry.slice(eq + 1)
  }
  return out
}
