/**
 * Turns the image inputs into the UUID of an image that exists on the service: an image UUID or a
 * ConTree tag is looked up exactly; a registry reference is imported once and then found again by
 * its manifest digest through the Actions cache. (A Dockerfile is built by build/executor.ts.)
 */
import * as core from '@actions/core'
import { imageConfigKeys, importKeys } from '../../image/cache-keys.ts'
import { errorMessage } from '../../errors.ts'
import type { ImageSpec, Inputs, RegistryCredentials } from '../../inputs.ts'
import { inLogGroup } from '../../operation-group.ts'
import { judge } from '../../outcome.ts'
import { say } from '../../output/say.ts'
import { reportFailure } from '../../output/remote-log.ts'
import type { ImageCache } from '../../image/image-cache.ts'
import type { LogGroups, ReportedOperation } from '../types.ts'
import type { ContreeServiceApi } from './service-types.ts'
import { parseReference, toContreeImportUrl, type ImageReference } from '../../image/reference.ts'
import { fetchImageConfig, readCachedImageConfig, type ImageConfig, type Platform } from '../../image/image-config.ts'
import { resolveManifestDigest, type RegistryTransport, type ResolveOptions } from '../../image/resolve-digest.ts'
import { createRegistryTransport } from '../../image/registry-transport.ts'

export interface PreparedImage {
  uuid: string
  /** Registry manifest digest of an import, or the build digest of a build. */
  digest?: string
  /** The whole import or build was served from the cache. */
  cacheHit: boolean
  tag?: string
  /**
   * What a container of the image starts with (Env, WorkingDir, User…): read from the registry for an
   * import, carried with the cache entry of a build. Absent when it cannot be known (a bare image id).
   */
  config?: ImageConfig
  /** Working directory, environment and numeric user a command in this image starts with (a build's final state, like docker run). */
  runDefaults?: { cwd: string; env: Record<string, string>; uid: number; gid: number }
}

export interface ImageContext {
  inputs: Inputs
  provider: ContreeServiceApi
  log: LogGroups
  signal: AbortSignal
  report: { buildSummary?: string; operations: ReportedOperation[] }
  cache: ImageCache
  registryTransport?: RegistryTransport
  /** The manifest digest of the `image` input, when the caller resolved it already (a refresh): not asked again. */
  manifestDigest?: string
}

/** The `image` input's image: found, or imported, then given the `tag` input when one is asked for. */
export async function prepareNamedImage(ctx: ImageContext, opts: { unnamed?: boolean } = {}): Promise<PreparedImage> {
  const { inputs } = ctx
  if (!inputs.image) throw new Error('internal: no image to prepare')
  const tag = opts.unnamed ? undefined : inputs.tag
  const image = await resolveImage(ctx, inputs.image, tag)
  if (tag && image.tag !== tag) {
    await ctx.provider.tagImage(image.uuid, tag, ctx.signal)
    say(`Tagged image ${image.uuid} as ${tag}.`)
    image.tag = tag
  }
  return image
}

/** Resolves an image spec (also a Dockerfile's FROM) to an existing image, importing when needed. */
export async function resolveImage(ctx: ImageContext, spec: ImageSpec, importTag?: string): Promise<PreparedImage> {
  const { provider, inputs, signal } = ctx
  switch (spec.kind) {
    case 'uuid': {
      const uuid = await provider.findImage({ uuid: spec.uuid }, signal)
      if (!uuid) throw new Error(`Image ${spec.uuid} does not exist on ${inputs.apiUrl}.`)
      return { uuid, cacheHit: false }
    }
    case 'tag': {
      const uuid = await provider.findImage({ tag: spec.tag }, signal)
      if (!uuid) {
        throw new Error(
          `No image is tagged "${spec.tag}" on ${inputs.apiUrl}. A name without a registry is looked up as a ConTree tag only; ` +
            `to import it from a registry, name the registry (e.g. docker.io/library/${spec.tag.replace(/^library\//, '')}, or docker://${spec.tag}).`,
        )
      }
      say(`Image tag:${spec.tag} is ${uuid}.`)
      return { uuid, cacheHit: false, tag: spec.tag }
    }
    case 'registry':
      return importImage(ctx, parseReference(spec.reference), importTag)
    case 'snapshot':
      throw new Error(`internal: "${spec.ref}" names a Together snapshot, not a ConTree image`)
    case 'name': {
      const tagged = await provider.findImage({ tag: spec.name }, signal)
      if (tagged) {
        say(`Image "${spec.name}" is the ConTree image ${tagged} (exact tag match); not importing.`)
        return { uuid: tagged, cacheHit: false, tag: spec.name }
      }
      return importImage(ctx, parseReference(spec.name), importTag)
    }
  }
}

/**
 * The config an earlier build of this action saved for an image it made (by image id), when there is
 * one: what a Dockerfile `FROM tag:NAME` (or a UUID) of a built image starts from. Only builds ask.
 */
export async function withCarriedConfig(ctx: ImageContext, image: PreparedImage): Promise<PreparedImage> {
  const scope = await ctx.cache.scope(ctx.signal)
  if (!scope) return image
  const keys = imageConfigKeys(scope, image.uuid)
  const hit = await ctx.cache.store.restore(keys.lookup, keys.restorePrefixes)
  const config = readCachedImageConfig((hit?.data as { config?: unknown } | undefined)?.config)
  return config ? { ...image, config } : image
}

/** Remembers the config of an image this action built, so a later `FROM` of it (by tag or id) starts from it. */
export async function saveCarriedConfig(ctx: ImageContext, imageUuid: string, config: ImageConfig): Promise<void> {
  const scope = await ctx.cache.scope(ctx.signal)
  if (!scope) return
  await ctx.cache.store.save(imageConfigKeys(scope, imageUuid).saveKey(), { version: 1, imageUuid, config })
}

/** The credentials for this reference's registry, if the inputs give any for exactly that host. */
function credentialsFor(ref: ImageReference, credentials: RegistryCredentials | undefined): { username: string; password: string } | undefined {
  if (!credentials) return undefined
  if (credentials.host !== ref.registry) {
    say(`Registry credentials are for ${credentials.host}, not ${ref.registry}: ${ref.original} is pulled without them.`)
    return undefined
  }
  return { username: credentials.username, password: credentials.password }
}

async function importImage(ctx: ImageContext, ref: ImageReference, tag?: string): Promise<PreparedImage> {
  const { inputs, provider, signal } = ctx
  const credentials = credentialsFor(ref, inputs.registryCredentials)
  const registry: ResolveOptions = {
    transport: ctx.registryTransport ?? createRegistryTransport(),
    ...(credentials ? { username: credentials.username, password: credentials.password } : {}),
    signal,
  }
  let digest: string | undefined
  try {
    // A reference pinned by digest needs no request; a tag costs one (the check that it did not move),
    // unless the caller made that request already.
    if (ctx.manifestDigest && ref.digest === undefined) digest = ctx.manifestDigest
    else {
      digest = await resolveManifestDigest(ref, registry)
      say(`${ref.original} resolves to ${digest}.`)
    }
  } catch (error) {
    if (signal.aborted) throw error
    core.warning(`Could not resolve ${ref.original} to a digest, so it is imported without caching: ${errorMessage(error)}`)
  }

  const scope = digest ? await ctx.cache.scope(signal) : undefined
  const keys = scope && digest ? importKeys(scope, digest) : undefined
  let config: ImageConfig | undefined
  if (keys && !inputs.noCache) {
    const hit = await ctx.cache.store.restore(keys.lookup, keys.restorePrefixes)
    const cached = readImportEntry(hit?.data)
    config = readCachedImageConfig((hit?.data as { config?: unknown } | undefined)?.config)
    if (cached) {
      // A cached id is used only once the service confirms the image still exists.
      if (await provider.imageExists(cached, signal)) {
        say(`Import of ${ref.original} served from cache: image ${cached} (${digest}).`)
        if (!config && digest) {
          // An entry from before configs were kept: read it now and keep it with a fresh entry.
          config = await readConfig(ref, digest, registry, provider.platform)
          if (config) await ctx.cache.store.save(keys.saveKey(), { version: 1, imageUuid: cached, digest, reference: ref.original, config })
        }
        // Not tagged here: the caller tags it when a tag was asked for.
        return { uuid: cached, digest: digest as string, cacheHit: true, ...(config ? { config } : {}) }
      }
      say(`Cached image ${cached} for ${ref.original} no longer exists on the service; importing again (the cache entry is replaced).`)
    }
  }

  if (digest && !config) config = await readConfig(ref, digest, registry, provider.platform)
  const pinned = digest ? { ...ref, digest } : ref
  const label = `import ${ref.original}`
  const { outcome, group } = await inLogGroup(ctx.log, `Import ${ref.original}`, label, {}, (group) =>
    provider.importImage(
      { reference: toContreeImportUrl(pinned), ...(credentials ? { credentials } : {}), ...(tag ? { tag } : {}) },
      group,
      { label, signal, deadlineMs: inputs.deadlineSeconds * 1000 },
    ),
  )
  ctx.report.operations.push({ label, outcome, expectsExitCode: false })
  const verdict = judge(outcome, `The import of ${ref.original}`)
  if (!verdict.ok || !outcome.resultImage) {
    const message = verdict.ok ? `The import of ${ref.original} produced no image (operation ${outcome.operationId})` : verdict.message
    reportFailure(group.tail(), message)
    throw new Error(message)
  }
  if (keys) await ctx.cache.store.save(keys.saveKey(), { version: 1, imageUuid: outcome.resultImage, digest, reference: ref.original, ...(config ? { config } : {}) })
  return { uuid: outcome.resultImage, ...(digest ? { digest } : {}), cacheHit: false, ...(tag ? { tag } : {}), ...(config ? { config } : {}) }
}

/** The image config from the registry; a failure is a warning (the image can still be imported and used). */
async function readConfig(ref: ImageReference, digest: string, registry: ResolveOptions, platform: Platform): Promise<ImageConfig | undefined> {
  try {
    return (await fetchImageConfig(ref, digest, { ...registry, platform })).config
  } catch (error) {
    if (registry.signal?.aborted) throw error
    core.warning(`Could not read the config of ${ref.original} (${digest}); its Env, WorkingDir and User are unknown: ${errorMessage(error)}`)
    return undefined
  }
}

function readImportEntry(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const uuid = (data as { imageUuid?: unknown }).imageUuid
  return typeof uuid === 'string' && uuid !== '' ? uuid : undefined
}
