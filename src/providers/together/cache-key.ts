/**
 * The builder's layer cache is grouped by `cache_key`, and its default (the image name without the tag)
 * never repeats, since every build gets a unique image name. A key derived from the repository and the
 * Dockerfile's path is the same on every run of the same Dockerfile, so each build starts from the
 * layers of the one before.
 */
import { createHash } from 'node:crypto'

/** The builder's limit. */
const MAX_KEY_LENGTH = 255

/** `sandbox-action/<owner>/<repo>/<dockerfile path>`, in the builder's alphabet ([a-z0-9._-] segments). */
export function defaultCacheKey(repository: string | undefined, dockerfilePath: string): string {
  const segments = ['sandbox-action', ...(repository ?? 'local').split('/'), ...dockerfilePath.split(/[\\/]/)]
    .map((segment) => segment.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, ''))
    .filter((segment) => segment !== '')
  const key = segments.join('/')
  if (key.length <= MAX_KEY_LENGTH) return key
  // Too long to spell out: keep a readable start and make the end unique.
  return `${key.slice(0, MAX_KEY_LENGTH - 17).replace(/[/.-]+$/, '')}/${createHash('sha256').update(key).digest('hex').slice(0, 16)}`
}
