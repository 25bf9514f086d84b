/**
 * ConTree behind the action's Provider: images are resolved by UUID or tag, imported from registries
 * and found again by digest through the Actions cache, or built by the action itself step by step
 * (build/executor.ts); a run is one spawn with the uploaded files placed. Cancelling live work is a
 * DELETE of its operation.
 */
import * as core from '@actions/core'
import { firstLine } from '../../output/format.ts'
import { ImageCache } from '../../image/image-cache.ts'
import { parseImage, type Inputs } from '../../inputs.ts'
import { inLogGroup } from '../../operation-group.ts'
import { say } from '../../output/say.ts'
import { StreamTally } from '../../stream-tally.ts'
import type {
  ImageRequest,
  LiveWork,
  LiveWorkRegistry,
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
import { envRecord, type ImageConfig } from '../../image/image-config.ts'
import { buildImage } from './build/executor.ts'
import { UserDbCache } from './build/step.ts'
import { EMPTY_USER_DB, needsUserDb, resolveUser } from './build/users.ts'
import { prepareNamedImage, resolveImage, type ImageContext, type PreparedImage as ContreeImage } from './images.ts'
import { findNamedTag, findPreviewTag, nameImage, recordNamedTag, removePreviewTag, replacePreview, type NamingDeps } from './preview.ts'
import { ContreeService } from './service.ts'
import { toSandboxFiles } from './service-types.ts'

export interface ContreeProviderOptions {
  inputs: Inputs
  userAgent: string
  registry?: LiveWorkRegistry
  debug?: (message: string) => void
  eventsIdleTimeoutMs?: number
  /** Injected in tests. */
  service?: ContreeService
}

export class ContreeProvider implements Provider {
  readonly name = 'contree'
  readonly endpoint: string
  readonly service: ContreeService
  private readonly inputs: Inputs
  private readonly cache: ImageCache

  constructor(options: ContreeProviderOptions) {
    const { inputs } = options
    this.inputs = inputs
    this.endpoint = inputs.apiUrl
    this.service =
      options.service ??
      new ContreeService({
        apiUrl: inputs.apiUrl,
        token: inputs.token,
        ...(inputs.project ? { project: inputs.project } : {}),
        userAgent: options.userAgent,
        ...(options.registry ? { registry: options.registry } : {}),
        ...(options.debug ? { debug: options.debug } : {}),
        ...(options.eventsIdleTimeoutMs ? { eventsIdleTimeoutMs: options.eventsIdleTimeoutMs } : {}),
      })
    this.cache = new ImageCache({
      provider: 'contree',
      apiUrl: inputs.apiUrl,
      ...(inputs.project ? { project: inputs.project } : {}),
      enabled: inputs.cache,
      accountId: (signal) => this.service.accountId(signal),
    })
  }

  async prepareImage(request: ImageRequest, ctx: ProviderContext): Promise<PreparedImage> {
    const report: ImageContext['report'] = { operations: [] }
    // Unnamed: the build and the import give no tag; the caller moves it (mode refresh).
    const { tag: _tag, ...untagged } = this.inputs
    const imageCtx: ImageContext = {
      inputs: request.kind !== 'existing' && request.unnamed ? untagged : this.inputs,
      provider: this.service,
      log: ctx.log,
      signal: ctx.signal,
      report,
      cache: this.cache,
      ...(request.kind === 'image' && request.manifestDigest ? { manifestDigest: request.manifestDigest } : {}),
    }
    try {
      let image: ContreeImage
      if (request.kind === 'build') image = await buildImage(imageCtx)
      else if (request.kind === 'existing') image = await resolveImage(imageCtx, parseImage(request.ref))
      else image = await prepareNamedImage(imageCtx, { unnamed: request.unnamed === true })
      const defaults = image.runDefaults ?? (image.config ? await this.defaultsFromConfig(image.uuid, image.config, ctx.signal) : undefined)
      return {
        id: image.uuid,
        ...(image.digest ? { digest: image.digest } : {}),
        cacheHit: image.cacheHit,
        ...(image.tag ? { tag: image.tag } : {}),
        outputs: { 'image-uuid': image.uuid },
        ...(defaults ? { defaults } : {}),
        // An import's digest is the registry's manifest digest itself.
        ...(request.kind === 'image' && image.digest ? { upstreamDigest: image.digest } : {}),
      }
    } finally {
      // Imports and a build's step table are part of the step's report, also when they failed.
      ctx.report.operations.push(...report.operations)
      if (report.buildSummary) ctx.report.sections.push(report.buildSummary)
    }
  }

  async run(image: PreparedImage, request: RunRequest, ctx: ProviderContext): Promise<RunOutcome> {
    let files = {}
    if (request.uploads && Object.keys(request.uploads).length > 0) {
      const placement = request.uploads
      const stored = await this.service.ensureFiles(
        Object.values(placement).map((entry) => entry.file),
        ctx.signal,
      )
      say(`Upload: ${Object.keys(placement).length} file(s); ${stored.uploaded} new (${stored.uploadedBytes} bytes), the rest already on the service.`)
      files = toSandboxFiles(placement, stored.ids)
    }
    const display = request.shell ? request.command : JSON.stringify([request.command, ...(request.args ?? [])])
    const label = request.label ?? 'run'
    // Like `docker run`: a built image's ENV, WORKDIR and USER apply unless the run says otherwise.
    const defaults = image.defaults
    const judging = { timeoutSeconds: request.timeoutSeconds, expectsExitCode: true }
    let tally: StreamTally | undefined
    const { outcome, group } = await inLogGroup(ctx.log, request.title ?? `Run: ${firstLine(display)}`, label, judging, (group) => {
      // In debug runs, account for every remote byte so a log can prove nothing was lost or repeated.
      tally = core.isDebug() ? new StreamTally(group) : undefined
      return this.service.run(
        {
          image: image.id,
          command: request.command,
          shell: request.shell,
          ...(request.args ? { args: request.args } : {}),
          env: { ...defaults?.env, ...request.env },
          ...(request.cwd ? { cwd: request.cwd } : defaults ? { cwd: defaults.cwd } : {}),
          ...(defaults && (defaults.uid !== 0 || defaults.gid !== 0) ? { uid: defaults.uid, gid: defaults.gid } : {}),
          timeoutSeconds: request.timeoutSeconds,
          disposable: request.disposable ?? false,
          files,
          ...(request.outputLimitBytes ? { outputLimitBytes: request.outputLimitBytes } : {}),
        },
        tally ?? group,
        { label, signal: ctx.signal, deadlineMs: request.deadlineMs },
      )
    })
    if (tally) core.debug(`Remote output of operation ${outcome.operationId}: ${tally.describe()}`)
    return {
      id: outcome.operationId,
      // A watched operation always ends terminal; anything else is a service failure.
      status: outcome.status === 'SUCCESS' || outcome.status === 'CANCELLED' ? outcome.status : 'FAILED',
      exitCode: outcome.exitCode,
      timedOut: outcome.timedOut,
      error: outcome.error,
      durationMs: outcome.durationMs,
      resultImage: outcome.resultImage,
      outputs: { 'operation-uuid': outcome.operationId, 'result-image-uuid': outcome.resultImage ?? '' },
      tail: group.tail(),
      ...(outcome.notices ? { notices: outcome.notices } : {}),
    }
  }

  /**
   * Like `docker run` of a registry image: its Env, WorkingDir and User apply unless the run says
   * otherwise (a named user is looked up in the image's own /etc/passwd).
   */
  private async defaultsFromConfig(uuid: string, config: ImageConfig, signal: AbortSignal): Promise<PreparedImage['defaults']> {
    const db = needsUserDb(config.user, 'user') ? await new UserDbCache(this.service, signal).get(uuid) : EMPTY_USER_DB
    const user = resolveUser(config.user, db)
    return { cwd: config.workingDir || '/', env: envRecord(config.env), uid: user.uid, gid: user.gid }
  }

  cancel(work: LiveWork, timeoutMs: number): Promise<string> {
    return this.service.cancel(work, timeoutMs)
  }

  isAlive(work: LiveWork, signal: AbortSignal): Promise<boolean | null> {
    return this.service.isAlive(work, signal)
  }

  replacePreview(image: PreparedImage, request: PreviewRequest, ctx: ProviderContext): Promise<PreviewOutcome> {
    return replacePreview(this.naming(), image.id, request, ctx)
  }

  findPreviews(target: PreviewTarget, signal: AbortSignal): Promise<PreviewPart[]> {
    return findPreviewTag(this.service.api, target, signal)
  }

  removePreview(target: PreviewTarget, part: PreviewPart, timeoutMs: number): Promise<'removed' | 'gone'> {
    return removePreviewTag(this.service.api, target, part, timeoutMs)
  }

  findNamed(name: string, reference: string, signal: AbortSignal): Promise<NamedImage | null> {
    return findNamedTag(this.service.api, this.cache, name, reference, signal)
  }

  async moveName(name: string, image: PreparedImage, ctx: ProviderContext): Promise<{ holderId: string; previousId: string | null }> {
    const { holder, previous } = await nameImage(this.naming(), name, image.id, ctx)
    return { holderId: holder, previousId: previous }
  }

  recordNamed(name: string, reference: string, named: NamedImage, signal: AbortSignal): Promise<void> {
    return recordNamedTag(this.cache, name, reference, named, signal)
  }

  private naming(): NamingDeps {
    return { api: this.service.api, run: (request, sink, options) => this.service.run(request, sink, options) }
  }
}
