/**
 * Together Sandbox behind the action's Provider: images are built by the remote builder (a Dockerfile
 * with its context, or a registry image through a one-line `FROM`) and registered as snapshots tagged
 * with their digest, so an unchanged build is found again on the service and nothing is built; runs
 * are execs in a fresh sandbox. Cancellation deletes builds, kills execs and terminates sandboxes.
 */
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { errorMessage, InputError } from '../../errors.ts'
import type { Sleep } from '../../http/sleep.ts'
import { say } from '../../output/say.ts'
import { formatReference, InvalidReferenceError, parseReference } from '../../image/reference.ts'
import { resolveManifestDigest, type RegistryTransport } from '../../image/resolve-digest.ts'
import { createRegistryTransport } from '../../image/registry-transport.ts'
import type {
  ImageRequest,
  LiveWork,
  NamedImage,
  PreparedImage,
  PreviewOutcome,
  PreviewPart,
  PreviewRequest,
  PreviewTarget,
  Provider,
  ProviderContext,
  RunOutcome,
  RunRequest,
} from '../types.ts'
import { AgentClient } from './agent.ts'
import { TogetherApi } from './api.ts'
import { TogetherBuilder } from './builder.ts'
import { defaultCacheKey } from './cache-key.ts'
import type { ArchiveOptions } from './context-archive.ts'
import { dockerfileOnlyTree, readContextTree, type ContextTree } from './context-tree.ts'
import { buildDigest, findBaseReferences, imageDigest, resolveBaseDigests } from './digest.ts'
import { cutAfterTarget } from './dockerfile-target.ts'
import type { TogetherSettings } from './inputs.ts'
import { runRemoteBuild } from './remote-build.ts'
import { findAliased } from './named.ts'
import { findPreviewSandboxes, removePreviewSandbox, replacePreview } from './preview.ts'
import { runInSandbox } from './sandbox-run.ts'
import { findByDigest, findExisting, registerSnapshot, TAG_COMMIT, TAG_MANIFEST, TAG_REPOSITORY, TAG_SOURCE } from './snapshots.ts'
import type { Sandbox, Tags } from './wire.ts'

export interface TogetherProviderOptions {
  settings: TogetherSettings
  userAgent: string
  /** The workspace: Dockerfiles are named relative to it (default cache key, messages). */
  workspace: string
  /** Injected by tests and benches (to count manifest requests); by default the action's own. */
  registryTransport?: RegistryTransport
  sleep?: Sleep
  archiveCompression?: ArchiveOptions['compression']
  /** A build's bound when the request names none. */
  buildDeadlineMs?: number
  /** Bound on the action's own cleanups (a lost build's DELETE, the terminate at the end of a run). */
  cleanupTimeoutMs?: number
}

const DEFAULT_BUILD_DEADLINE_MS = 60 * 60 * 1000
const DEFAULT_CLEANUP_TIMEOUT_MS = 10_000
/** An ephemeral sandbox's ttl beyond its deadline: time for the action to terminate it itself. */
const SAFETY_TTL_MARGIN_SECONDS = 600
const BUILD_ENDED: ReadonlySet<string> = new Set(['succeeded', 'success', 'failed', 'error', 'cancelled', 'canceled'])
const SANDBOX_ENDED: ReadonlySet<string> = new Set(['terminated', 'failed_to_start', 'unrecovered'])

export class TogetherProvider implements Provider {
  readonly name = 'together'
  readonly endpoint: string
  readonly api: TogetherApi
  readonly builder: TogetherBuilder
  private readonly options: TogetherProviderOptions
  private readonly settings: TogetherSettings
  /** Agents of the sandboxes this process runs, so a signal can kill an exec without asking the API first. */
  private readonly agents = new Map<string, AgentClient>()
  private readonly otherApis = new Map<string, TogetherApi>()
  private readonly otherBuilders = new Map<string, TogetherBuilder>()
  private registryTransport: RegistryTransport | undefined

  constructor(options: TogetherProviderOptions) {
    this.options = options
    this.settings = options.settings
    this.endpoint = options.settings.apiUrl
    const common = { token: options.settings.token, userAgent: options.userAgent, ...(options.sleep ? { sleep: options.sleep } : {}) }
    this.api = new TogetherApi({ baseUrl: options.settings.apiUrl, ...common })
    this.builder = new TogetherBuilder({ baseUrl: options.settings.builderUrl, ...common })
  }

  async prepareImage(request: ImageRequest, ctx: ProviderContext): Promise<PreparedImage> {
    switch (request.kind) {
      case 'existing': {
        const snapshot = await findExisting(this.api, request.ref, ctx.signal)
        return { id: snapshot.id, cacheHit: false, outputs: { 'snapshot-id': snapshot.id } }
      }
      case 'image':
        return this.fromRegistryImage(request, ctx)
      case 'build':
        return this.fromDockerfile(request, ctx)
    }
  }

  async run(image: PreparedImage, request: RunRequest, ctx: ProviderContext): Promise<RunOutcome> {
    // The ttl input applies when main passes none of its own.
    const ttlSeconds = request.ttlSeconds ?? this.settings.ttlSeconds
    return runInSandbox(image.id, ttlSeconds === undefined ? request : { ...request, ttlSeconds }, ctx, { api: this.api, agentFor: (sandbox) => this.agentFor(sandbox), endpoint: this.settings.apiUrl }, {
      cpu: this.settings.cpu,
      memoryBytes: this.settings.memoryBytes,
      ...(this.settings.repository ? { repository: this.settings.repository } : {}),
      ...(this.settings.commit ? { commit: this.settings.commit } : {}),
      cleanupTimeoutMs: this.options.cleanupTimeoutMs ?? DEFAULT_CLEANUP_TIMEOUT_MS,
      safetyTtlMarginSeconds: SAFETY_TTL_MARGIN_SECONDS,
      ...(this.options.sleep ? { sleep: this.options.sleep } : {}),
    })
  }

  async cancel(work: LiveWork, timeoutMs: number): Promise<string> {
    switch (work.kind) {
      case 'build': {
        const result = await this.builderAt(work.endpoint).cancel(work.id, { timeoutMs })
        return result === 'cancelled' ? 'build deleted' : 'the builder no longer knows it'
      }
      case 'sandbox': {
        const result = await this.apiAt(work.endpoint).terminateSandbox(work.id, { timeoutMs })
        return result === 'terminating' ? 'terminate requested' : result === 'already-ended' ? 'it had already ended' : 'the service no longer knows it'
      }
      case 'exec': {
        const deadline = AbortSignal.timeout(timeoutMs)
        const ended = 'its sandbox is not running, so neither is the command'
        const agent = work.parentId === undefined ? undefined : await this.agentOf(work.parentId, work.endpoint, deadline)
        if (agent === undefined) return ended
        try {
          const result = await agent.deleteExec(work.id, { timeoutMs, signal: deadline })
          return result === 'killed' ? 'command killed' : 'the command had already gone'
        } catch (error) {
          // Cancelled next to its sandbox, the agent may already be gone: then so is the command.
          const sandbox = await this.apiAt(work.endpoint)
            .getSandbox(work.parentId as string, AbortSignal.timeout(timeoutMs))
            .catch(() => undefined)
          if (sandbox === null || (sandbox !== undefined && sandbox.status !== 'running')) return ended
          throw error
        }
      }
      default:
        throw new Error(`internal: the Together provider cannot cancel ${work.kind} ${work.id}`)
    }
  }

  /** false: it ended; null: the service does not know it (nothing to cancel either way); true: cancel it. */
  async isAlive(work: LiveWork, signal: AbortSignal): Promise<boolean | null> {
    switch (work.kind) {
      case 'build': {
        const status = await this.builderAt(work.endpoint).status(work.id, signal)
        if (status === null) return null
        if (typeof status.image_ref === 'string' && status.image_ref !== '') return false
        // The SDKs read only image_ref; a status word, where the builder gives one, can tell an end too.
        // Without one, a DELETE (idempotent) is the safe answer.
        return typeof status.status !== 'string' || !BUILD_ENDED.has(status.status.toLowerCase())
      }
      case 'sandbox': {
        const sandbox = await this.apiAt(work.endpoint).getSandbox(work.id, signal)
        return sandbox === null ? null : !SANDBOX_ENDED.has(sandbox.status)
      }
      case 'exec': {
        const agent = work.parentId === undefined ? undefined : await this.agentOf(work.parentId, work.endpoint, signal)
        if (agent === undefined) return false
        const exec = await agent.getExec(work.id, signal)
        return exec === null ? null : exec.exitCode < 0
      }
      default:
        return null
    }
  }

  async replacePreview(image: PreparedImage, request: PreviewRequest, ctx: ProviderContext): Promise<PreviewOutcome> {
    const outcome = await replacePreview(
      image.id,
      { ...request, ...(request.ttlSeconds === undefined && this.settings.ttlSeconds !== undefined ? { ttlSeconds: this.settings.ttlSeconds } : {}) },
      ctx,
      { api: this.api, agentFor: (sandbox) => this.agentFor(sandbox), endpoint: this.settings.apiUrl },
      {
        cpu: this.settings.cpu,
        memoryBytes: this.settings.memoryBytes,
        cleanupTimeoutMs: this.options.cleanupTimeoutMs ?? DEFAULT_CLEANUP_TIMEOUT_MS,
        ...(this.options.sleep ? { sleep: this.options.sleep } : {}),
      },
    )
    return { ...outcome, outputs: { ...image.outputs, ...outcome.outputs } }
  }

  findPreviews(target: PreviewTarget, signal: AbortSignal): Promise<PreviewPart[]> {
    return findPreviewSandboxes(target, this.api, signal)
  }

  async removePreview(_target: PreviewTarget, part: PreviewPart, timeoutMs: number): Promise<'removed' | 'gone'> {
    if (part.what !== 'sandbox') throw new Error(`internal: a Together preview has no ${part.what}`)
    return removePreviewSandbox(part.id, this.api, timeoutMs)
  }

  findNamed(name: string, reference: string, signal: AbortSignal): Promise<NamedImage | null> {
    return findAliased(this.api, name, reference, signal)
  }

  /** An alias upsert repoints it in one request, so the name never points nowhere. */
  async moveName(name: string, image: PreparedImage, ctx: ProviderContext): Promise<{ holderId: string; previousId: string | null }> {
    const previous = await this.api.getSnapshotByAlias(name, ctx.signal)
    if (previous?.id !== image.id) await this.api.aliasSnapshot(image.id, name, ctx.signal)
    return { holderId: image.id, previousId: previous?.id ?? null }
  }

  async retireImage(id: string, signal: AbortSignal): Promise<string> {
    const snapshot = await this.api.getSnapshot(id, signal)
    if (snapshot === null) return `snapshot ${id} no longer exists`
    if (snapshot.retired_at !== null) return `snapshot ${id} was already retired`
    // Another name still starts sandboxes from it: retiring would break that name, so it stays.
    const aliases = (await this.api.snapshotAliases(id, signal)) ?? []
    if (aliases.length > 0) return `snapshot ${id} kept: the alias(es) ${aliases.map((a) => a.alias).join(', ')} still point at it`
    await this.api.retireSnapshot(id, signal)
    return `snapshot ${id} retired`
  }

  private async fromDockerfile(request: Extract<ImageRequest, { kind: 'build' }>, ctx: ProviderContext): Promise<PreparedImage> {
    const name = path.relative(this.options.workspace, request.dockerfile).split(path.sep).join('/') || 'Dockerfile'
    const original = await readFile(request.dockerfile, 'utf8')
    const sent = request.target ? cutAfterTarget(original, request.target, name) : original
    const tree = await readContextTree(request.context, request.dockerfile, sent === original ? {} : { dockerfileText: sent })
    if (tree.skippedLinks.length > 0) {
      const names = tree.skippedLinks.slice(0, 5).map((link) => `${link.relPath} → ${link.target}`)
      say(`${tree.skippedLinks.length} symbolic link(s) in the build context point outside it and are not sent: ${names.join(', ')}${tree.skippedLinks.length > 5 ? ', …' : ''}`)
    }
    const digest = await this.buildDigestOf(sent, tree, request, ctx)
    return this.snapshotOf(
      {
        digest,
        noCache: request.noCache,
        what: name,
        tags: { [TAG_SOURCE]: truncateTag(`dockerfile:${name}${request.target ? `#${request.target}` : ''}`) },
        deadlineMs: request.deadlineMs,
        tree,
        buildArgs: request.buildArgs,
        cacheKey: this.settings.cacheKey ?? defaultCacheKey(this.settings.repository, name),
        unnamed: request.unnamed === true,
      },
      ctx,
    )
  }

  private async buildDigestOf(dockerfileText: string, tree: ContextTree, request: Extract<ImageRequest, { kind: 'build' }>, ctx: ProviderContext): Promise<string | undefined> {
    const bases = findBaseReferences(dockerfileText, request.buildArgs)
    const resolved = 'refs' in bases ? await resolveBaseDigests(bases.refs, { transport: this.transport(), signal: ctx.signal }) : bases
    if ('unknown' in resolved) {
      say(`This build is not reused across runs, since ${resolved.unknown}; it is built every time.`)
      return undefined
    }
    return buildDigest({
      tree,
      dockerfileText,
      buildArgs: request.buildArgs,
      ...(request.target ? { target: request.target } : {}),
      architecture: this.settings.architecture,
      baseDigests: resolved.digests,
    })
  }

  private async fromRegistryImage(request: Extract<ImageRequest, { kind: 'image' }>, ctx: ProviderContext): Promise<PreparedImage> {
    let ref
    try {
      ref = parseReference(request.reference)
    } catch (error) {
      if (error instanceof InvalidReferenceError) throw new InputError('image', error.message)
      throw error
    }
    let manifest: string | undefined = ref.digest === undefined ? request.manifestDigest : undefined
    try {
      if (manifest === undefined) {
        manifest = await resolveManifestDigest(ref, { transport: this.transport(), signal: ctx.signal })
        say(`${ref.original} resolves to ${manifest}.`)
      }
    } catch (error) {
      if (ctx.signal.aborted) throw error
      say(`${ref.original} could not be resolved to a digest, so its snapshot is made again every time: ${errorMessage(error)}`)
    }
    // Pinned, so the snapshot is exactly the manifest its digest tag names.
    const from = manifest ? formatReference({ ...ref, digest: manifest }) : formatReference(ref)
    return this.snapshotOf(
      {
        digest: manifest ? imageDigest(formatReference(ref), manifest, this.settings.architecture) : undefined,
        ...(manifest ? { upstreamDigest: manifest } : {}),
        noCache: request.noCache,
        what: ref.original,
        tags: { [TAG_SOURCE]: truncateTag(`image:${formatReference(ref)}`), ...(manifest ? { [TAG_MANIFEST]: manifest } : {}) },
        deadlineMs: request.deadlineMs,
        tree: dockerfileOnlyTree(`FROM ${from}\n`),
        buildArgs: {},
        unnamed: request.unnamed === true,
      },
      ctx,
    )
  }

  /** The snapshot for a digest: found again when it exists, else built and registered. */
  private async snapshotOf(
    spec: { digest: string | undefined; upstreamDigest?: string; noCache: boolean; what: string; tags: Tags; deadlineMs: number | undefined; tree: ContextTree; buildArgs: Record<string, string>; cacheKey?: string; unnamed?: boolean },
    ctx: ProviderContext,
  ): Promise<PreparedImage> {
    const outputs: Record<string, string> = spec.digest ? { digest: spec.digest } : {}
    if (spec.digest && !spec.noCache) {
      const existing = await findByDigest(this.api, spec.digest, ctx.signal)
      if (existing) {
        say(`${spec.what} is unchanged (digest ${spec.digest.slice(0, 12)}): snapshot ${existing.id} is reused; nothing is built.`)
        if (!spec.unnamed) await this.applyAlias(existing.id, ctx)
        return { id: existing.id, digest: spec.digest, cacheHit: true, ...upstream(spec.upstreamDigest), outputs: { ...outputs, 'snapshot-id': existing.id } }
      }
    }
    const built = await runRemoteBuild(
      this.builder,
      {
        tree: spec.tree,
        buildArgs: spec.buildArgs,
        ...(spec.cacheKey ? { cacheKey: spec.cacheKey } : {}),
        title: `Build ${spec.what} (Together builder)`,
        label: `build ${spec.what}`,
        deadlineMs: spec.deadlineMs ?? this.options.buildDeadlineMs ?? DEFAULT_BUILD_DEADLINE_MS,
      },
      ctx,
      {
        cancelTimeoutMs: this.options.cleanupTimeoutMs ?? DEFAULT_CLEANUP_TIMEOUT_MS,
        ...(this.options.archiveCompression !== undefined ? { compression: this.options.archiveCompression } : {}),
        ...(this.options.sleep ? { sleep: this.options.sleep } : {}),
      },
    )
    ctx.signal.throwIfAborted()
    const snapshot = await registerSnapshot(
      this.api,
      {
        imageRef: built.imageRef,
        architecture: this.settings.architecture,
        ...(spec.digest ? { digest: spec.digest } : {}),
        ...(this.settings.snapshotTtlSeconds !== undefined ? { ttlSeconds: this.settings.snapshotTtlSeconds } : {}),
        tags: {
          ...spec.tags,
          ...(this.settings.repository ? { [TAG_REPOSITORY]: this.settings.repository } : {}),
          ...(this.settings.commit ? { [TAG_COMMIT]: this.settings.commit } : {}),
        },
      },
      { stopRetrying: ctx.signal, log: ctx.debug, ...(this.options.sleep ? { sleep: this.options.sleep } : {}) },
    )
    say(`Registered snapshot ${snapshot.id} (${built.imageRef}).`)
    if (!spec.unnamed) await this.applyAlias(snapshot.id, ctx)
    return { id: snapshot.id, ...(spec.digest ? { digest: spec.digest } : {}), cacheHit: false, ...upstream(spec.upstreamDigest), outputs: { ...outputs, 'snapshot-id': snapshot.id, 'image-ref': built.imageRef, 'build-id': built.buildId } }
  }

  private async applyAlias(snapshotId: string, ctx: ProviderContext): Promise<void> {
    const alias = this.settings.alias
    if (alias === undefined) return
    await this.api.aliasSnapshot(snapshotId, alias, ctx.signal)
    say(`Alias ${alias} now points at snapshot ${snapshotId}.`)
  }

  private agentFor(sandbox: Sandbox): AgentClient {
    const known = this.agents.get(sandbox.id)
    if (known) return known
    if (!sandbox.agent.url || !sandbox.agent.token) throw new Error(`sandbox ${sandbox.id} is ${sandbox.status}, but the service gave no address for its agent`)
    const agent = new AgentClient({ url: sandbox.agent.url, token: sandbox.agent.token, userAgent: this.options.userAgent, ...(this.options.sleep ? { sleep: this.options.sleep } : {}) })
    this.agents.set(sandbox.id, agent)
    return agent
  }

  /** The agent of a sandbox this process knows, or read from the service; undefined when it is not running. */
  private async agentOf(sandboxId: string, endpoint: string, signal: AbortSignal): Promise<AgentClient | undefined> {
    const known = this.agents.get(sandboxId)
    if (known) return known
    const sandbox = await this.apiAt(endpoint).getSandbox(sandboxId, signal)
    if (sandbox === null || sandbox.status !== 'running') return undefined
    return this.agentFor(sandbox)
  }

  private apiAt(endpoint: string): TogetherApi {
    if (endpoint === this.settings.apiUrl) return this.api
    let api = this.otherApis.get(endpoint)
    if (!api) {
      api = new TogetherApi({ baseUrl: endpoint, token: this.settings.token, userAgent: this.options.userAgent })
      this.otherApis.set(endpoint, api)
    }
    return api
  }

  private builderAt(endpoint: string): TogetherBuilder {
    if (endpoint === this.builder.baseUrl) return this.builder
    let builder = this.otherBuilders.get(endpoint)
    if (!builder) {
      builder = new TogetherBuilder({ baseUrl: endpoint, token: this.settings.token, userAgent: this.options.userAgent })
      this.otherBuilders.set(endpoint, builder)
    }
    return builder
  }

  private transport(): RegistryTransport {
    this.registryTransport ??= this.options.registryTransport ?? createRegistryTransport()
    return this.registryTransport
  }
}

function upstream(digest: string | undefined): { upstreamDigest?: string } {
  return digest ? { upstreamDigest: digest } : {}
}

/** Tag values are free text; long ones are cut, as they are for reading, not lookups. */
function truncateTag(value: string): string {
  return value.length > 255 ? `${value.slice(0, 254)}…` : value
}

