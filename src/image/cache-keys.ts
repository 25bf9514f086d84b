/**
 * Cache keys. Everything that determines a result is in its key: the service (provider, endpoint,
 * project, and the account behind the token) and the content digest. Keys are hex only (no commas,
 * well under 512 characters).
 *
 * Entries are immutable in the Actions cache, so a result is never saved under its bare key: each save
 * gets a unique suffix and restores look up the bare key's prefix, which finds the newest entry. An
 * entry whose image was deleted on the service is therefore replaced by simply saving a fresh one.
 */
import { createHash, randomBytes } from 'node:crypto'

const PREFIX = 'remote-sandbox-v2'

function digest(parts: readonly string[]): string {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(`${part.length}:${part}`)
  return hash.digest('hex')
}

export interface ServiceScope {
  provider: string
  apiUrl: string
  project?: string
  /**
   * Who the token acts for, as the service names it (ConTree: the whoami token id). Never the token
   * or anything derived from it: two accounts on one endpoint must not share image ids.
   */
  account: string
}

/** Short id of the service and account an image lives on: the same digest elsewhere is another image. */
export function scopeId(scope: ServiceScope): string {
  return digest([scope.provider, scope.apiUrl, scope.project ?? '', scope.account]).slice(0, 16)
}

/** Where a cached result is looked up (newest entry under `restorePrefix`) and saved (`saveKey()`). */
export interface CacheKeys {
  /** Never saved itself; restores that name it find nothing exactly and fall back to the prefixes. */
  lookup: string
  /** Newest first: this exact result, then (for builds) the latest build of the same Dockerfile. */
  restorePrefixes: string[]
  /** A fresh, unique key for saving this result. */
  saveKey(): string
}

function keysUnder(base: string, ...broader: string[]): CacheKeys {
  return {
    lookup: base,
    restorePrefixes: [`${base}-`, ...broader],
    saveKey: () => `${base}-${Date.now().toString(36)}${randomBytes(4).toString('hex')}`,
  }
}

export function importKeys(scope: ServiceScope, manifestDigest: string): CacheKeys {
  return keysUnder(`${PREFIX}-import-${scopeId(scope)}-${manifestDigest.replace(/^sha256:/, '')}`)
}

/** Keys of one Dockerfile's builds: this build exactly, else the latest build of the same Dockerfile. */
export function buildKeys(scope: ServiceScope, dockerfileId: string, buildDigest: string): CacheKeys {
  const dockerfilePrefix = `${PREFIX}-build-${scopeId(scope)}-${dockerfileId}-`
  return keysUnder(`${dockerfilePrefix}${buildDigest}`, dockerfilePrefix)
}

/** The config (Env, WorkingDir, User…) of an image the action built, found again by its id (FROM tag:NAME). */
export function imageConfigKeys(scope: ServiceScope, imageUuid: string): CacheKeys {
  return keysUnder(`${PREFIX}-config-${scopeId(scope)}-${imageUuid.toLowerCase().replace(/[^0-9a-f-]/g, '')}`)
}

/**
 * What a name (a ConTree tag) following a registry reference was last moved to, and since when: the
 * memory of a scheduled refresh where the service itself keeps none. One entry per (account, name,
 * reference), the newest found by prefix.
 */
export function refreshKeys(scope: ServiceScope, name: string, reference: string): CacheKeys {
  return keysUnder(`${PREFIX}-refresh-${scopeId(scope)}-${digest([name, reference]).slice(0, 32)}`)
}

/** True when a restored entry is this exact result (not merely the latest build of the same Dockerfile). */
export function isExactMatch(keys: CacheKeys, matchedKey: string): boolean {
  return matchedKey.startsWith(keys.restorePrefixes[0] as string)
}

/** Identifies "the same Dockerfile" across edits: where it is and what context it builds. */
export function dockerfileId(dockerfileRelPath: string, contextRelPath: string): string {
  return digest([dockerfileRelPath, contextRelPath]).slice(0, 16)
}

