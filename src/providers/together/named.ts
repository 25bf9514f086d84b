/**
 * A name that follows an upstream image or a Dockerfile (mode refresh): on Together the name is a snapshot alias, and
 * the service itself tells what it points at and what it was made from (the snapshot's tags), so a
 * refresh needs no memory of its own.
 */
import { formatReference, parseReference } from '../../image/reference.ts'
import type { NamedImage } from '../types.ts'
import type { TogetherApi } from './api.ts'
import { TAG_DIGEST, TAG_MANIFEST, TAG_SOURCE } from './snapshots.ts'

/** The source tag a snapshot of this registry reference carries (see the provider's registry path). */
export function imageSourceTag(reference: string): string {
  return `image:${formatReference(parseReference(reference))}`
}

/**
 * What the alias points at. The upstream digest is known only when that snapshot was made from this
 * very reference and is still usable; a retired one, or one of another image, has none (so a refresh
 * makes it again).
 */
export async function findAliased(api: Pick<TogetherApi, 'getSnapshotByAlias'>, alias: string, reference: string, signal: AbortSignal): Promise<NamedImage | null> {
  const snapshot = await api.getSnapshotByAlias(alias, signal)
  if (snapshot === null) return null
  // A Dockerfile (`dockerfile:PATH[#TARGET]`, the source tag its builds carry) is known by its build digest.
  const dockerfile = reference.startsWith('dockerfile:')
  const sameSource = snapshot.tags?.[TAG_SOURCE] === (dockerfile ? reference : imageSourceTag(reference))
  const digest = snapshot.tags?.[dockerfile ? TAG_DIGEST : TAG_MANIFEST]
  if (snapshot.retired_at !== null || !sameSource || !digest) return { id: snapshot.id }
  return { id: snapshot.id, upstreamDigest: digest, since: new Date(snapshot.created_at) }
}
