/**
 * The Together section of the inputs, read from a plain record (input name → raw value, '' when
 * unset) and the environment, so that inputs.ts can hand it over without this module reading the
 * runner itself. Every error names its input, quotes the value and says what was expected; nothing
 * here touches the network.
 */
import { InputError } from '../../errors.ts'
import type { Architecture } from './wire.ts'

export const DEFAULT_TOGETHER_API_URL = 'https://api.bartender.codesandbox.io'
/** The SDK's sandbox size: 1 CPU and 2 GiB. */
const DEFAULT_CPU = 1
const DEFAULT_MEMORY_BYTES = 2 * 1024 ** 3
/** The API's bounds (api-openapi.json, createSandbox). */
const CPU_RANGE = [0.1, 16] as const
const MEMORY_RANGE = [200_000_000, 32_000_000_000] as const
const GB = 1_000_000_000
const MAX_TTL_SECONDS = 365 * 24 * 3600

export interface TogetherSettings {
  /** Management API base without `/v1` and without a trailing slash. */
  apiUrl: string
  token: string
  /** Image builder base. */
  builderUrl: string
  /** Layer-cache group for remote builds; undefined: derived from the repository and Dockerfile path. */
  cacheKey?: string
  /** Pointed at every snapshot this run prepares (upsert). */
  alias?: string
  /** Sandbox lifetime on the service (auto-terminate). */
  ttlSeconds?: number
  /** Snapshot lifetime on the service (auto-retire). */
  snapshotTtlSeconds?: number
  keepAlive: boolean
  architecture: Architecture
  cpu: number
  memoryBytes: number
  /** `owner/name` of the workflow's repository, for tags and the default cache key. */
  repository?: string
  /** The commit the workflow runs for, for tags. */
  commit?: string
}

export type TogetherInputName =
  | 'api-url'
  | 'token'
  | 'builder-url'
  | 'cache-key'
  | 'alias'
  | 'ttl'
  | 'snapshot-ttl'
  | 'keep-alive'
  | 'architecture'
  | 'cpu'
  | 'memory'

export function parseTogetherInputs(raw: Partial<Record<TogetherInputName, string>>, env: NodeJS.ProcessEnv = process.env): TogetherSettings {
  const value = (name: TogetherInputName): string => (raw[name] ?? '').trim()

  const token = value('token') || env.TOGETHER_API_KEY || ''
  if (!token) {
    throw new InputError('token', 'is required: set the token input (e.g. token: ${{ secrets.TOGETHER_API_KEY }}) or the TOGETHER_API_KEY environment variable')
  }
  const apiUrl = parseBaseUrl('api-url', value('api-url') || env.TOGETHER_BASE_URL || DEFAULT_TOGETHER_API_URL).replace(/\/v1$/, '')
  const builderUrl = value('builder-url') ? parseBaseUrl('builder-url', value('builder-url')) : deriveBuilderUrl(apiUrl)

  const cpu = parseCpu(value('cpu'))
  const memoryBytes = value('memory') ? parseMemory(value('memory'), cpu) : defaultMemory(cpu)
  const architecture = parseArchitecture(value('architecture') || env.TOGETHER_REMOTE_ARCHITECTURE || 'amd64', value('architecture') ? 'architecture' : 'TOGETHER_REMOTE_ARCHITECTURE')

  const settings: TogetherSettings = {
    apiUrl,
    token,
    builderUrl,
    keepAlive: parseBoolean('keep-alive', value('keep-alive') || 'false'),
    architecture,
    cpu,
    memoryBytes,
  }
  if (value('cache-key')) settings.cacheKey = parseCacheKey('cache-key', value('cache-key'))
  if (value('alias')) settings.alias = parseAlias(value('alias'))
  if (value('ttl')) settings.ttlSeconds = parseTtl('ttl', value('ttl'))
  if (value('snapshot-ttl')) settings.snapshotTtlSeconds = parseTtl('snapshot-ttl', value('snapshot-ttl'))
  if (env.GITHUB_REPOSITORY) settings.repository = env.GITHUB_REPOSITORY
  if (env.GITHUB_SHA) settings.commit = env.GITHUB_SHA
  return settings
}

/**
 * The builder's base as the SDK derives it: `api.bartender.` → `builder.`. A base without that part
 * would give the SDK the API host itself, which answers every build with 404; here it is an error that
 * says which input to set.
 */
export function deriveBuilderUrl(apiUrl: string): string {
  if (!apiUrl.includes('api.bartender.')) {
    throw new InputError(
      'builder-url',
      `is required: the image builder's address cannot be derived from api-url "${apiUrl}" (only a host with "api.bartender." maps to the builder's "builder."); set builder-url to the builder's base URL`,
    )
  }
  return apiUrl.replace('api.bartender.', 'builder.')
}

function parseBaseUrl(name: TogetherInputName, text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new InputError(name, `"${text}" is not a URL; expected e.g. ${name === 'api-url' ? DEFAULT_TOGETHER_API_URL : 'https://builder.codesandbox.io'}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError(name, `"${text}" must use http or https`)
  if (url.username || url.password || url.search || url.hash) {
    throw new InputError(name, `"${url.origin}${url.pathname}" must not carry credentials, a query or a fragment`)
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '')
}

function parseBoolean(name: TogetherInputName, text: string): boolean {
  if (/^(true|True|TRUE)$/.test(text)) return true
  if (/^(false|False|FALSE)$/.test(text)) return false
  throw new InputError(name, `expected true or false, got "${text}"`)
}

function parseArchitecture(text: string, source: string): Architecture {
  if (text === 'amd64' || text === 'arm64') return text
  const message = `"${text}" is not an architecture the service builds for; expected amd64 or arm64`
  if (source === 'architecture') throw new InputError('architecture', message)
  throw new InputError('architecture', `${message} (from the ${source} environment variable)`)
}

function parseCpu(text: string): number {
  if (text === '') return DEFAULT_CPU
  const cpu = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN
  if (!(cpu >= CPU_RANGE[0] && cpu <= CPU_RANGE[1])) {
    throw new InputError('cpu', `"${text}" is not a number of cores from ${CPU_RANGE[0]} to ${CPU_RANGE[1]} (e.g. 2 or 0.5)`)
  }
  return cpu
}

/** The SDK's 2 GiB, moved into the 1–8 GB per CPU the service requires. */
function defaultMemory(cpu: number): number {
  return Math.round(Math.min(Math.max(DEFAULT_MEMORY_BYTES, cpu * GB), cpu * 8 * GB))
}

/** Bytes with an optional unit: 4GiB, 4096MiB, 4G (= GiB), 4GB (decimal), 2000000000. */
function parseMemory(text: string, cpu: number): number {
  const match = /^(\d+(?:\.\d+)?)\s*(|B|K|KB|KiB|M|MB|MiB|G|GB|GiB)$/i.exec(text)
  const unit = (match?.[2] ?? '').toLowerCase()
  const scale: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, kb: 1000, m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2, g: 1024 ** 3, gib: 1024 ** 3, gb: GB }
  const bytes = match ? Math.round(Number(match[1]) * (scale[unit] ?? Number.NaN)) : Number.NaN
  if (!(bytes >= MEMORY_RANGE[0] && bytes <= MEMORY_RANGE[1])) {
    throw new InputError('memory', `"${text}" is not a memory size from 200MB to 32GB (e.g. 4GiB, 2048MiB)`)
  }
  if (bytes < cpu * GB || bytes > cpu * 8 * GB) {
    throw new InputError('memory', `"${text}" does not fit cpu ${cpu}: the service requires 1 to 8 GB per CPU (${cpu} to ${cpu * 8} GB here)`)
  }
  return bytes
}

/** Whole seconds, or a number with s, m, h or d. */
function parseTtl(name: TogetherInputName, text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(text)
  const scale = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match?.[2] ?? ''] ?? Number.NaN
  const seconds = match ? Number(match[1]) * scale : Number.NaN
  if (!(seconds >= 1 && seconds <= MAX_TTL_SECONDS)) {
    throw new InputError(name, `"${text}" is not a lifetime from 1 second to 365 days (e.g. 3600, 90m, 2h, 7d)`)
  }
  return seconds
}

/** The builder's documented constraint: a lowercase path of [a-z0-9._-] segments, no tag, ≤ 255. */
export function parseCacheKey(name: string, text: string): string {
  if (text.length > 255 || !/^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/.test(text)) {
    throw new InputError(name, `"${text}" is not a cache key: expected a lowercase path of letters, digits, ".", "_", "-" and "/" (no tag, at most 255 characters)`)
  }
  return text
}

function parseAlias(text: string): string {
  // Aliases are free-form on the service; they travel in URL paths and tags, so no spaces or controls.
  if (text.length > 255 || /[\s\x00-\x1f\x7f]/.test(text)) {
    throw new InputError('alias', `"${text}" is not a snapshot alias: expected at most 255 characters without spaces (e.g. my-app or my-app@main)`)
  }
  return text
}

/**
 * Settings enough to inspect and cancel work recorded in step state (post has no inputs object):
 * every such call names its own endpoint, so only the token matters.
 */
export function settingsForCleanup(token: string, apiUrl: string): TogetherSettings {
  return { apiUrl, token, builderUrl: apiUrl, keepAlive: false, architecture: 'amd64', cpu: DEFAULT_CPU, memoryBytes: DEFAULT_MEMORY_BYTES }
}
