/**
 * Cache keys. Everything that determines a result is in its key: the service (provider, endpoint,
 * project) and the content digest. Keys are hex only (no commas, well under 512 characters).
 */
import { createHash } from 'node:crypto'

const PREFIX = 'remote-sandbox-v1'

function digest(parts: readonly string[]): string {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(`${part.length}:${part}`)
  return hash.digest('hex')
}

export interface ServiceScope {
  provider: string
  apiUrl: string
  project?: string
}

/** Short id of the service an image lives on: the same digest on another endpoint is another image. */
export function scopeId(scope: ServiceScope): string {
  return digest([scope.provider, scope.apiUrl, scope.project ?? '']).slice(0, 16)
}

export function importKey(scope: ServiceScope, manifestDigest: string): string {
  return `${PREFIX}-import-${scopeId(scope)}-${manifestDigest.replace(/^sha256:/, '')}`
}

/** Keys of one Dockerfile's builds: the exact key for this build, and the prefix finding its latest build. */
export function buildKeys(scope: ServiceScope, dockerfileId: string, buildDigest: string): { key: string; restorePrefix: string } {
  const restorePrefix = `${PREFIX}-build-${scopeId(scope)}-${dockerfileId}-`
  return { key: `${restorePrefix}${buildDigest}`, restorePrefix }
}

/** Identifies "the same Dockerfile" across edits: where it is and what context it builds. */
export function dockerfileId(dockerfileRelPath: string, contextRelPath: string): string {
  return digest([dockerfileRelPath, contextRelPath]).slice(0, 16)
}
