/**
 * Snapshots as the action uses them: the digest cache lives on the service itself, as a tag on every
 * snapshot the action registers, so "has this exact build been done?" is one tag lookup (active
 * snapshots only) scoped to the token's project, and never stale. Registering is a create: after an
 * ambiguous failure the digest (or a one-off request tag) is looked up before it is sent again.
 */
import { randomUUID } from 'node:crypto'
import type { Sleep } from '../../http/sleep.ts'
import type { TogetherApi } from './api.ts'
import { createOnce } from './create-once.ts'
import type { Architecture, Snapshot, Tags } from './wire.ts'

/** Tag keys the action sets (≤ 59 of [A-Za-z0-9._-], starting and ending with a letter or digit). */
export const TAG_DIGEST = 'sandbox-action.digest'
export const TAG_REQUEST = 'sandbox-action.request'
export const TAG_REPOSITORY = 'sandbox-action.repository'
export const TAG_COMMIT = 'sandbox-action.commit'
export const TAG_SOURCE = 'sandbox-action.source'
/** The registry manifest digest a snapshot of a registry image was made from (what a refresh compares). */
export const TAG_MANIFEST = 'sandbox-action.manifest'

const SNAPSHOT_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The newest active snapshot carrying this digest, or null. */
export async function findByDigest(api: Pick<TogetherApi, 'findSnapshots'>, digest: string, signal?: AbortSignal): Promise<Snapshot | null> {
  const found = await api.findSnapshots({ [TAG_DIGEST]: digest }, { excludeRetired: true, limit: 1, ...(signal ? { signal } : {}) })
  // The filter already excludes retired ones; a server that ignored it must not hand one back.
  return found.find((snapshot) => snapshot.retired_at === null && snapshot.tags?.[TAG_DIGEST] === digest) ?? null
}

export interface RegisterRequest {
  imageRef: string
  architecture: Architecture
  digest?: string
  ttlSeconds?: number
  /** Extra tags (repository, commit, what it was built from). */
  tags: Tags
}

export async function registerSnapshot(
  api: Pick<TogetherApi, 'createSnapshot' | 'findSnapshots'>,
  request: RegisterRequest,
  opts: { stopRetrying?: AbortSignal; log?: (message: string) => void; sleep?: Sleep } = {},
): Promise<Snapshot> {
  const requestId = randomUUID()
  const tags: Tags = { ...request.tags, [TAG_REQUEST]: requestId, ...(request.digest ? { [TAG_DIGEST]: request.digest } : {}) }
  return createOnce({
    what: `registering ${request.imageRef} as a snapshot`,
    create: (stopRetrying) =>
      api.createSnapshot(
        { image: request.imageRef, architecture: request.architecture, tags, ...(request.ttlSeconds !== undefined ? { ttl: request.ttlSeconds } : {}) },
        stopRetrying,
      ),
    // Any active snapshot of the same digest is the same content; without a digest, only this request's own.
    find: async () => {
      const lookupTags: Tags = request.digest ? { [TAG_DIGEST]: request.digest } : { [TAG_REQUEST]: requestId }
      const found = await api.findSnapshots(lookupTags, { excludeRetired: true, limit: 1, signal: AbortSignal.timeout(30_000) })
      return found[0] ?? null
    },
    ...(opts.stopRetrying ? { stopRetrying: opts.stopRetrying } : {}),
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.sleep ? { sleep: opts.sleep } : {}),
  })
}

/** A snapshot named by its id or an alias, usable to start sandboxes (active). */
export async function findExisting(api: Pick<TogetherApi, 'getSnapshot' | 'getSnapshotByAlias'>, ref: string, signal?: AbortSignal): Promise<Snapshot> {
  const alias = ref.startsWith('@') ? ref.slice(1) : ref
  const snapshot = SNAPSHOT_UUID.test(ref) ? await api.getSnapshot(ref.toLowerCase(), signal) : await api.getSnapshotByAlias(alias, signal)
  if (snapshot === null) throw new Error(`No snapshot ${SNAPSHOT_UUID.test(ref) ? ref : `with the alias "${alias}"`} exists for this token's project.`)
  if (snapshot.retired_at !== null) throw new Error(`Snapshot ${snapshot.id} (${ref}) was retired at ${snapshot.retired_at}; it cannot start sandboxes any more.`)
  return snapshot
}
