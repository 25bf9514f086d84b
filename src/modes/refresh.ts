/**
 * Mode refresh: keep a name (ConTree tag, Together alias) on the newest image of a registry reference,
 * as a nightly workflow does. The upstream digest is resolved once and compared with the one the name's
 * image was made from: unchanged costs that one manifest request and nothing else; changed imports
 * (or builds) the new image first and moves the name only once it exists, so a cancelled or failed
 * refresh leaves the name on the previous image. A Dockerfile is refreshed through its build: the build
 * digest covers its FROM images' digests, so an unchanged base builds nothing (every step from the
 * cache) and the name stays. Vendor-free: the provider finds, builds, moves and retires.
 */
import * as path from 'node:path'
import * as core from '@actions/core'
import { errorMessage } from '../errors.ts'
import type { Inputs } from '../inputs.ts'
import { parseReference, type ImageReference } from '../image/reference.ts'
import { createRegistryTransport } from '../image/registry-transport.ts'
import { resolveManifestDigest, type RegistryTransport, type ResolveOptions } from '../image/resolve-digest.ts'
import { escapeMarkdownInline } from '../output/markdown-escape.ts'
import { say, warn } from '../output/say.ts'
import { codeCell } from '../output/summary.ts'
import type { ImageRequest, NamedImage, PreparedImage, Provider, ProviderContext } from '../providers/types.ts'

export interface RefreshDeps {
  /** The registry transport (tests count requests on it); the action's own one otherwise. */
  transport?: RegistryTransport
  now?: () => Date
}

export interface RefreshResult {
  changed: boolean
  name: string
  reference: string
  /** The upstream manifest digest now (a Dockerfile's: its build digest). */
  digest: string
  /** The digest the name's image was made from before; undefined when nobody recorded it. */
  previousDigest?: string
  /** The image the name points at now. */
  imageId: string
  /** The image it pointed at before (the same as imageId when unchanged); undefined when it named none. */
  previousImageId?: string
  /** Unchanged: since when the name has pointed at an image of this digest (undefined: nobody recorded it). */
  since?: Date
  /** What became of the previous image when retire-previous asked for it. */
  retired?: string
}

export async function runRefresh(inputs: Inputs, provider: Provider, ctx: ProviderContext, deps: RefreshDeps = {}): Promise<RefreshResult> {
  const name = inputs.tag
  if (!name || !inputs.refresh) throw new Error('internal: mode refresh without its tag or settings')
  const { findNamed } = provider
  if (!findNamed || !provider.moveName) throw new Error(`The ${provider.name} provider cannot keep a name on a refreshed image.`)
  const now = deps.now ?? (() => new Date())

  let result: RefreshResult
  if (inputs.build) {
    const { dockerfile, context, buildArgs, target } = inputs.build
    const reference = `dockerfile:${path.relative(inputs.workspace, dockerfile).split(path.sep).join('/') || 'Dockerfile'}${target ? `#${target}` : ''}`
    const named = await findNamed.call(provider, name, reference, ctx.signal)
    const request: ImageRequest = { kind: 'build', dockerfile, context, buildArgs, ...(target ? { target } : {}), noCache: inputs.noCache, deadlineMs: inputs.deadlineSeconds * 1000, unnamed: true }
    result = await prepareAndMove(inputs, provider, ctx, request, { name, reference, named, now })
  } else {
    const spec = inputs.image
    if (spec?.kind !== 'registry') throw new Error('internal: mode refresh without a registry image or a Dockerfile')
    const reference = spec.reference
    const named = await findNamed.call(provider, name, reference, ctx.signal)
    const digest = await resolveUpstream(parseReference(reference), inputs, deps.transport ?? createRegistryTransport(), ctx.signal)
    if (named?.upstreamDigest === digest) {
      result = { changed: false, name, reference, digest, previousDigest: digest, imageId: named.id, previousImageId: named.id, ...(named.since ? { since: named.since } : {}) }
      say(`${reference} is still ${digest}: ${name} stays on ${named.id}, unchanged since ${formatSince(named.since)}. Nothing was imported or built.`)
    } else {
      say(
        named
          ? `${reference} is now ${digest}; ${name} points at ${named.id}${named.upstreamDigest ? `, made from ${named.upstreamDigest}` : ', made from a digest nobody recorded'}.`
          : `${reference} is ${digest}; no image is named ${name} yet.`,
      )
      const request: ImageRequest = { kind: 'image', reference, noCache: inputs.noCache, deadlineMs: inputs.deadlineSeconds * 1000, manifestDigest: digest, unnamed: true }
      result = await prepareAndMove(inputs, provider, ctx, request, { name, reference, named, now, digest })
    }
  }
  setRefreshOutputs(result)
  ctx.report.sections.push(renderRefreshSummary(result, provider))
  return result
}

/**
 * Makes the image (unnamed), then moves the name to it. `digest` is the upstream digest of a registry
 * image; a Dockerfile's is its build digest, known once it is prepared.
 */
async function prepareAndMove(
  inputs: Inputs,
  provider: Provider,
  ctx: ProviderContext,
  request: ImageRequest,
  at: { name: string; reference: string; named: NamedImage | null; now: () => Date; digest?: string },
): Promise<RefreshResult> {
  const { name, reference, named } = at
  const image: PreparedImage = await provider.prepareImage(request, ctx)
  // A signal during the import or build: the name stays where it was (main reports the cancellation).
  ctx.signal.throwIfAborted()
  const digest = at.digest ?? image.digest
  if (!digest) throw new Error(`internal: the image made for ${name} has no digest`)
  const moved = await (provider.moveName as NonNullable<Provider['moveName']>).call(provider, name, image, ctx)
  const previousImageId = moved.previousId ?? undefined
  // Unchanged: the name already held this very image (a Dockerfile whose bases did not move, or a
  // registry image whose record was lost).
  const changed = previousImageId !== moved.holderId
  const since = changed ? at.now() : (named?.since ?? at.now())
  if (provider.recordNamed) {
    try {
      await provider.recordNamed(name, reference, { id: moved.holderId, upstreamDigest: digest, since }, ctx.signal)
    } catch (error) {
      // Next time the refresh imports again (found by digest, so cheaply) instead of trusting a record.
      warn(`Could not record that ${name} now holds an image of ${digest}: ${errorMessage(error)}`)
    }
  }
  const previousDigest = changed ? named?.upstreamDigest : digest
  const result: RefreshResult = {
    changed,
    name,
    reference,
    digest,
    ...(previousDigest ? { previousDigest } : {}),
    imageId: moved.holderId,
    ...(previousImageId ? { previousImageId } : {}),
    ...(changed ? {} : { since }),
  }
  if (changed) say(`${name} now points at ${moved.holderId}${previousImageId ? ` (was ${previousImageId})` : ''}.`)
  else say(`${name} already pointed at ${moved.holderId}, an image of ${digest}: unchanged since ${formatSince(since)}.`)
  if (changed && previousImageId && inputs.refresh?.retirePrevious) result.retired = await retirePrevious(provider, previousImageId, ctx.signal)
  return result
}

/** Retiring is tidying up after the move: its failure is a warning, the refresh itself succeeded. */
async function retirePrevious(provider: Provider, id: string, signal: AbortSignal): Promise<string> {
  if (!provider.retireImage) return `${id} kept: the ${provider.name} provider retires nothing`
  try {
    const what = await provider.retireImage(id, signal)
    say(`Previous image: ${what}.`)
    return what
  } catch (error) {
    const what = `${id} could not be retired: ${errorMessage(error)}`
    warn(`The name moved, but the previous image ${what}`)
    return what
  }
}

/** The one manifest request of a refresh, with the registry credentials when they are for this registry. */
async function resolveUpstream(ref: ImageReference, inputs: Inputs, transport: RegistryTransport, signal: AbortSignal): Promise<string> {
  const credentials = inputs.registryCredentials
  const options: ResolveOptions = { transport, signal }
  if (credentials && credentials.host === ref.registry) Object.assign(options, { username: credentials.username, password: credentials.password })
  try {
    return await resolveManifestDigest(ref, options)
  } catch (error) {
    if (signal.aborted) throw error
    throw new Error(`Could not resolve ${ref.original} to a digest, so nothing was refreshed and ${inputs.tag} stays where it was: ${errorMessage(error)}`, { cause: error })
  }
}

function setRefreshOutputs(result: RefreshResult): void {
  core.setOutput('changed', String(result.changed))
  core.setOutput('digest', result.digest)
  core.setOutput('previous-digest', result.previousDigest ?? '')
  core.setOutput('image-id', result.imageId)
  core.setOutput('previous-image-id', result.previousImageId ?? '')
  core.setOutput('tag', result.name)
}

/** "2026-12-02 23:44 UTC"; a date nobody recorded says so. */
export function formatSince(since: Date | undefined): string {
  if (!since || !Number.isFinite(since.getTime())) return 'an unrecorded date'
  return `${since.toISOString().slice(0, 16).replace('T', ' ')} UTC`
}

export function renderRefreshSummary(result: RefreshResult, provider: Pick<Provider, 'name' | 'endpoint'>): string {
  const status = result.changed
    ? `🔄 ${escapeMarkdownInline(result.name)} moved to a new image`
    : `✅ ${escapeMarkdownInline(result.name)} unchanged since ${formatSince(result.since)}`
  const rows = [
    `| Reference | ${codeCell(result.reference)} |`,
    `| Digest | ${result.changed ? `${codeCell(result.previousDigest)} → ${codeCell(result.digest)}` : codeCell(result.digest)} |`,
    `| Image | ${result.changed ? `${codeCell(result.previousImageId)} → ${codeCell(result.imageId)}` : codeCell(result.imageId)} |`,
    ...(result.retired ? [`| Previous image | ${escapeMarkdownInline(result.retired)} |`] : []),
  ]
  return `## ${status}\n\nProvider: ${escapeMarkdownInline(provider.name)} at ${codeCell(provider.endpoint)}\n\n| | |\n|---|---|\n${rows.join('\n')}\n`
}
