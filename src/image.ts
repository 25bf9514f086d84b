/**
 * Turns the image inputs into the UUID of an image that exists on the service: an image UUID or a
 * ConTree tag is looked up exactly; a registry reference is imported once and then found again by
 * its manifest digest through the Actions cache; a Dockerfile is built (see build-image.ts).
 */
import * as core from '@actions/core'
import { ActionsCacheStore, NO_CACHE, type CacheStore } from './cache/actions-cache-store.ts'
import { importKey, type ServiceScope } from './cache/keys.ts'
import { errorMessage } from './errors.ts'
import type { ImageSpec, Inputs } from './inputs.ts'
import { inLogGroup } from './operation-group.ts'
import { judge } from './outcome.ts'
import { reportFailure, type RemoteLog } from './output/remote-log.ts'
import type { OperationOutcome, Provider } from './providers/types.ts'
import { parseReference, toContreeImportUrl, type ImageReference } from './registry/reference.ts'
import { resolveManifestDigest, type RegistryTransport } from './registry/resolve-digest.ts'
import { createRegistryTransport } from './registry/transport.ts'
import { buildImage } from './build-image.ts'

export interface PreparedImage {
  uuid: string
  /** Registry manifest digest of an import, or the build digest of a build. */
  digest?: string
  /** The whole import or build was served from the cache. */
  cacheHit: boolean
  tag?: string
  /** Working directory, environment and user a command in this image starts with (a build's WORKDIR, ENV, USER). */
  runDefaults?: { cwd: string; env: Record<string, string>; user?: string }
}

export interface ImageContext {
  inputs: Inputs
  provider: Provider
  log: RemoteLog
  signal: AbortSignal
  report: { buildSummary?: string; operations: { label: string; outcome: OperationOutcome }[] }
  cache?: CacheStore
  registryTransport?: RegistryTransport
}

export function serviceScope(inputs: Inputs): ServiceScope {
  return { provider: inputs.provider, apiUrl: inputs.apiUrl, ...(inputs.project ? { project: inputs.project } : {}) }
}

export function cacheFor(inputs: Inputs): CacheStore {
  return inputs.cache ? new ActionsCacheStore() : NO_CACHE
}

export async function prepareImage(ctx: ImageContext): Promise<PreparedImage> {
  const { inputs } = ctx
  const cache = ctx.cache ?? cacheFor(inputs)
  if (inputs.build) return buildImage({ ...ctx, cache })
  if (!inputs.image) throw new Error('internal: no image to prepare')
  const image = await resolveImage({ ...ctx, cache }, inputs.image, inputs.tag)
  if (inputs.tag && image.tag !== inputs.tag) {
    await ctx.provider.tagImage(image.uuid, inputs.tag, ctx.signal)
    core.info(`Tagged image ${image.uuid} as ${inputs.tag}.`)
    image.tag = inputs.tag
  }
  return image
}

/** Resolves an image spec (also a Dockerfile's FROM) to an existing image, importing when needed. */
export async function resolveImage(ctx: ImageContext & { cache: CacheStore }, spec: ImageSpec, importTag?: string): Promise<PreparedImage> {
  const { provider, inputs, signal } = ctx
  switch (spec.kind) {
    case 'uuid': {
      const uuid = await provider.findImage({ uuid: spec.uuid }, signal)
      if (!uuid) throw new Error(`Image ${spec.uuid} does not exist on ${inputs.apiUrl}.`)
      return { uuid, cacheHit: false }
    }
    case 'tag': {
      const uuid = await provider.findImage({ tag: spec.tag }, signal)
      if (!uuid) throw new Error(`No image is tagged "${spec.tag}" on ${inputs.apiUrl}.`)
      core.info(`Image tag:${spec.tag} is ${uuid}.`)
      return { uuid, cacheHit: false, tag: spec.tag }
    }
    case 'name': {
      const tagged = await provider.findImage({ tag: spec.name }, signal)
      if (tagged) {
        core.info(`Image "${spec.name}" is the ConTree image ${tagged} (exact tag match); not importing.`)
        return { uuid: tagged, cacheHit: false, tag: spec.name }
      }
      return importImage(ctx, parseReference(spec.name), importTag)
    }
  }
}

async function importImage(ctx: ImageContext & { cache: CacheStore }, ref: ImageReference, tag?: string): Promise<PreparedImage> {
  const { inputs, provider, signal, cache } = ctx
  const credentials = inputs.registryCredentials
  let digest: string | undefined
  try {
    digest = await resolveManifestDigest(ref, {
      transport: ctx.registryTransport ?? createRegistryTransport(),
      ...(credentials ? { username: credentials.username, password: credentials.password } : {}),
      signal,
    })
    core.info(`${ref.original} resolves to ${digest}.`)
  } catch (error) {
    if (signal.aborted) throw error
    core.warning(`Could not resolve ${ref.original} to a digest, so it is imported without caching: ${errorMessage(error)}`)
  }

  const key = digest ? importKey(serviceScope(inputs), digest) : undefined
  if (key && !inputs.noCache) {
    const hit = await cache.restore(key, [])
    const cached = readImportEntry(hit?.data)
    if (cached) {
      if (await provider.imageExists(cached, signal)) {
        core.info(`Import of ${ref.original} served from cache: image ${cached} (${digest}).`)
        // Not tagged here: the caller tags it when a tag was asked for.
        return { uuid: cached, digest: digest as string, cacheHit: true }
      }
      core.info(`Cached image ${cached} for ${ref.original} no longer exists on the service; importing again.`)
    }
  }

  const pinned = digest ? { ...ref, digest } : ref
  const { outcome, group } = await inLogGroup(ctx.log, `Import ${ref.original}`, `import ${ref.original}`, {}, (group) =>
    provider.importImage(
      { reference: toContreeImportUrl(pinned), ...(credentials ? { credentials } : {}), ...(tag ? { tag } : {}) },
      group,
      { label: `import ${ref.original}`, signal },
    ),
  )
  ctx.report.operations.push({ label: `import ${ref.original}`, outcome })
  const verdict = judge(outcome, `The import of ${ref.original}`)
  if (!verdict.ok || !outcome.resultImage) {
    const message = verdict.ok ? `The import of ${ref.original} produced no image (operation ${outcome.operationId})` : verdict.message
    reportFailure(group.tail(), message)
    throw new Error(message)
  }
  if (key) await cache.save(key, { version: 1, imageUuid: outcome.resultImage, digest, reference: ref.original })
  return { uuid: outcome.resultImage, ...(digest ? { digest } : {}), cacheHit: false, ...(tag ? { tag } : {}) }
}

function readImportEntry(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const uuid = (data as { imageUuid?: unknown }).imageUuid
  return typeof uuid === 'string' && uuid !== '' ? uuid : undefined
}
