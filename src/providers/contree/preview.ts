/**
 * A pull request's preview on ConTree, and a name that follows an upstream image: both are a tag on an
 * image (ConTree has no long-lived sandboxes; a tag is what people run from). The tag is found again on
 * the service by an exact lookup, never remembered, and moved in one critical section (tags.ts).
 *
 * An image carries one tag: when the image to name already carries another one (the same content was
 * built for another PR, or tagged by another workflow), tagging it would silently take that other name
 * away. The name then goes to a copy of the image (one operation that changes nothing).
 */
import { errorMessage } from '../../errors.ts'
import { refreshKeys } from '../../image/cache-keys.ts'
import type { ImageCache } from '../../image/image-cache.ts'
import { say } from '../../output/say.ts'
import type { NamedImage, OperationOutcome, OutputSink, PreviewOutcome, PreviewPart, PreviewRequest, PreviewTarget, ProviderContext } from '../types.ts'
import type { SpawnRequest, StartOptions } from './service-types.ts'
import { moveTag, type TagApi } from './tags.ts'

export interface NamingDeps {
  api: TagApi
  /** Runs one operation (the copy), registered as live work like any other. */
  run(request: SpawnRequest, sink: OutputSink, options: StartOptions): Promise<OperationOutcome>
}

/** A copy is one `true`; it may still wait in the service's queue. */
const COPY_DEADLINE_MS = 15 * 60 * 1000

/** The part of a preview a tag makes: the image that holds it. */
export function tagPart(tag: string, imageId: string): PreviewPart {
  return { what: `tag ${tag} of image`, id: imageId }
}

/** How to run something in the preview with the ConTree CLI. */
export function reachCommands(tag: string): string {
  return [`# with the ConTree CLI, signed in to this service (and project)`, `contree run --use tag:${tag} -- uname -a`].join('\n')
}

/**
 * Gives `tag` to `imageId` (or to a copy of it, see above), taking it from its holder in one critical
 * section. Returns the image that now holds it and the one that held it before.
 */
export async function nameImage(deps: NamingDeps, tag: string, imageId: string, ctx: ProviderContext): Promise<{ holder: string; previous: string | null }> {
  const previous = await deps.api.findImageByTag(tag, ctx.signal)
  if (previous === imageId) return { holder: imageId, previous }
  const target = await ownImage(deps, tag, imageId, ctx)
  if (previous === target) return { holder: target, previous }
  // A signal that arrived before the critical section: do not start it.
  ctx.signal.throwIfAborted()
  await moveTag(deps.api, { tag, from: previous, to: target })
  say(previous ? `Tag ${tag} moved from image ${previous} to image ${target}.` : `Image ${target} tagged ${tag}.`)
  return { holder: target, previous }
}

export async function replacePreview(deps: NamingDeps, imageId: string, request: PreviewRequest, ctx: ProviderContext): Promise<PreviewOutcome> {
  const { holder, previous } = await nameImage(deps, request.name, imageId, ctx)
  return {
    parts: [tagPart(request.name, holder)],
    imageId: holder,
    ports: [],
    reach: reachCommands(request.name),
    replaced: previous !== null && previous !== holder ? [tagPart(request.name, previous)] : [],
    leftBehind: [],
    outputs: { 'image-id': holder, 'image-uuid': holder, tag: request.name },
  }
}

export async function findPreviewTag(api: Pick<TagApi, 'findImageByTag'>, target: PreviewTarget, signal: AbortSignal): Promise<PreviewPart[]> {
  const holder = await api.findImageByTag(target.name, signal)
  return holder === null ? [] : [tagPart(target.name, holder)]
}

export async function removePreviewTag(api: Pick<TagApi, 'untagImage'>, target: PreviewTarget, part: PreviewPart, timeoutMs: number): Promise<'removed' | 'gone'> {
  const result = await api.untagImage(part.id, target.name, AbortSignal.timeout(timeoutMs))
  return result === null ? 'gone' : 'removed'
}

/** What a refresh's cache entry holds. */
interface RefreshEntry {
  version: 1
  tag: string
  reference: string
  imageUuid: string
  digest: string
  since: string
}

/**
 * What the tag points at. The upstream digest comes from the Actions cache (ConTree keeps no labels),
 * and only counts while the tag still names the image the entry recorded.
 */
export async function findNamedTag(api: Pick<TagApi, 'findImageByTag'>, cache: ImageCache, tag: string, reference: string, signal: AbortSignal): Promise<NamedImage | null> {
  const holder = await api.findImageByTag(tag, signal)
  if (holder === null) return null
  const scope = await cache.scope(signal)
  if (!scope) return { id: holder }
  const keys = refreshKeys(scope, tag, reference)
  const entry = readEntry((await cache.store.restore(keys.lookup, keys.restorePrefixes))?.data)
  if (!entry || entry.imageUuid !== holder || entry.tag !== tag || entry.reference !== reference) return { id: holder }
  const since = new Date(entry.since)
  return { id: holder, upstreamDigest: entry.digest, ...(Number.isFinite(since.getTime()) ? { since } : {}) }
}

export async function recordNamedTag(cache: ImageCache, tag: string, reference: string, named: NamedImage, signal: AbortSignal): Promise<void> {
  if (!named.upstreamDigest) return
  const scope = await cache.scope(signal)
  if (!scope) return
  const entry: RefreshEntry = {
    version: 1,
    tag,
    reference,
    imageUuid: named.id,
    digest: named.upstreamDigest,
    since: (named.since ?? new Date()).toISOString(),
  }
  await cache.store.save(refreshKeys(scope, tag, reference).saveKey(), entry)
}

function readEntry(data: unknown): RefreshEntry | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const entry = data as Partial<RefreshEntry>
  const strings = [entry.tag, entry.reference, entry.imageUuid, entry.digest, entry.since]
  return entry.version === 1 && strings.every((value) => typeof value === 'string' && value !== '') ? (entry as RefreshEntry) : undefined
}

/** The image itself when it carries no tag or this one; else a copy of it that carries none. */
async function ownImage(deps: NamingDeps, tag: string, imageId: string, ctx: ProviderContext): Promise<string> {
  const image = await deps.api.getImage(imageId, ctx.signal)
  if (image === null) throw new Error(`Image ${imageId} does not exist on the service any more; it cannot be tagged ${tag}.`)
  if (!image.tag || image.tag === tag) return imageId
  say(`Image ${imageId} already carries the tag ${image.tag}, and an image has only one: ${tag} goes to a copy of it, so ${image.tag} keeps its image.`)
  const quiet: OutputSink = { write: (_stream, chunk) => ctx.debug(`copy of ${imageId}: ${Buffer.from(chunk).toString('utf8').trim()}`) }
  let outcome: OperationOutcome
  try {
    outcome = await deps.run({ image: imageId, command: 'true', shell: true, disposable: false, timeoutSeconds: 60 }, quiet, {
      label: `copy of image ${imageId} for ${tag}`,
      signal: ctx.signal,
      deadlineMs: COPY_DEADLINE_MS,
    })
  } catch (error) {
    if (ctx.signal.aborted) throw error
    throw new Error(`Image ${imageId} could not be copied for the tag ${tag}: ${errorMessage(error)}`, { cause: error })
  }
  if (outcome.status !== 'SUCCESS' || outcome.exitCode !== 0 || !outcome.resultImage) {
    throw new Error(`Image ${imageId} could not be copied for the tag ${tag}: operation ${outcome.operationId} ended ${outcome.status}${outcome.exitCode !== null ? ` with exit code ${outcome.exitCode}` : ''}${outcome.error ? ` (${outcome.error})` : ''}.`)
  }
  return outcome.resultImage
}
