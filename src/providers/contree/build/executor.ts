/**
 * Builds a Dockerfile remotely, stage by stage and step by step: each RUN (with the file operations
 * placed before it) is one operation on the previous step's image, streamed live in its own group.
 * Only the stages the target needs are built, dependencies first; a stage starts from its base
 * image's config (read from the registry, or carried with an earlier build) or from the stage it is
 * built FROM. Every step has a key chained from its base and everything before it — files of other
 * stages count through those stages' result keys — so a step whose key maps to an image that still
 * exists is CACHED and spawns nothing. The key → image map travels between runners in the Actions
 * cache: the exact key is the whole build, the restore prefix finds the latest build of the same
 * Dockerfile, so an edit late in the file reuses every unchanged step before it.
 */
import * as fs from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'
import * as core from '@actions/core'
import { buildKeys, dockerfileId, isExactMatch } from '../../../image/cache-keys.ts'
import { resolveTree } from '../../../dockerfile/context.ts'
import { DockerfileError, parseDockerfile } from '../../../dockerfile/dockerfile.ts'
import { createIgnoreMatcher, readDockerignore } from '../../../dockerfile/dockerignore.ts'
import { createBuildPlan, type BuildPlan, type BuildStep, type PlannedStage } from './plan.ts'
import { neededImages, readStages } from '../../../dockerfile/stages.ts'
import { sniffCompression } from './tar-extract.ts'
import { buildCacheKey, configOnlyKey, fromKey, stepKeys } from './step-key.ts'
import { needsUserDb, resolveUser, UserLookupError } from './users.ts'
import { displayUrl, downloadUrl } from './download.ts'
import { errorMessage, InputError } from '../../../errors.ts'
import { HttpError } from '../../../http/errors.ts'
import { resolveImage, saveCarriedConfig, withCarriedConfig, type ImageContext, type PreparedImage } from '../images.ts'
import { parseBaseImage } from '../../../inputs.ts'
import { inLogGroup } from '../../../operation-group.ts'
import { judge, type Verdict } from '../../../outcome.ts'
import { annotationMessage, reportFailure } from '../../../output/remote-log.ts'
import { say, warn } from '../../../output/say.ts'
import { renderBuildSummary, type BuildSummaryStep } from '../../../output/summary.ts'
import { materialize, materializeInline, prepareStep, UserDbCache, type StepContext } from './step.ts'
import type { LocalFile, LogGroup, OperationOutcome } from '../../types.ts'
import type { SandboxFile } from '../service-types.ts'
import { envRecord, type ImageConfig } from '../../../image/image-config.ts'

interface StepMap {
  version: 2
  /** Step key → image UUID, for the steps of one successful build. */
  steps: Record<string, string>
  /**
   * Content sha256 → remote file id of the files that build placed, so the next build does not probe
   * thousands of unchanged files one request at a time. Trusted until a spawn says otherwise.
   */
  files?: Record<string, string>
  /** Final step key → the numeric user the built image's USER is (so a warm build reads no /etc/passwd). */
  runAs?: Record<string, { uid: number; gid: number }>
}

/** File ids remembered from the last build, and the ids this build used (what the next one remembers). */
interface FileIds {
  remembered: Map<string, string>
  used: Map<string, string>
}

/** A stage's steps with their keys, and what it ends as. */
interface KeyedStage {
  stage: PlannedStage
  label: string
  baseKey: string
  keys: string[]
  resultKey: string
}

export async function buildImage(ctx: ImageContext): Promise<PreparedImage> {
  const { inputs, provider, signal } = ctx
  const cache = ctx.cache.store
  const build = inputs.build
  if (!build) throw new Error('internal: no build inputs')
  const dockerfileName = path.relative(inputs.workspace, build.dockerfile) || 'Dockerfile'
  const contextName = path.relative(inputs.workspace, build.context) || '.'

  // Everything local (parse, stages, plan, hash the context) before anything is built.
  let text: string
  try {
    text = fs.readFileSync(build.dockerfile, 'utf8')
  } catch (error) {
    throw new InputError('dockerfile', `cannot read ${dockerfileName}: ${errorMessage(error)}`)
  }
  const parsed = parseDockerfile(text, { fileName: dockerfileName })
  const graph = readStages(parsed, { buildArgs: build.buildArgs, ...(build.target ? { target: build.target } : {}), platform: provider.platform })
  const matcher = createIgnoreMatcher(await readDockerignore(build.context, build.dockerfile))
  const tree = (sources: readonly string[]) => resolveTree(build.context, sources, matcher)

  // What the action cannot build is said before anything remote happens: a first plan with unknown
  // base configs finds it. Other errors may depend on a base image's Env, so they wait for the real plan.
  const dryPlan = await createBuildPlan(parsed, {
    graph,
    buildArgs: build.buildArgs,
    platform: provider.platform,
    resolveSources: (sources) => tree(sources),
    baseConfig: () => undefined,
  }).catch((error: unknown) => {
    if (error instanceof DockerfileError && error.unsupported) throw error
    return undefined
  })
  if (dryPlan) checkArchives(dryPlan, dockerfileName)

  // The images the needed stages start from or copy from: resolved (imported when needed) with their configs.
  const images = new Map<string, PreparedImage>()
  for (const { ref, line } of neededImages(graph)) {
    let spec
    try {
      spec = parseBaseImage(ref)
    } catch (error) {
      throw new DockerfileError(line, `${ref}: ${errorMessage(error).replace(/^Input 'image': /, '')}`, dockerfileName)
    }
    const image = await resolveImage(ctx, spec)
    // An image found on the service rather than imported may be one this action built: its config travels in the cache.
    images.set(ref, image.config || image.digest ? image : await withCarriedConfig(ctx, image))
  }
  const plan = await createBuildPlan(parsed, {
    graph,
    buildArgs: build.buildArgs,
    platform: provider.platform,
    resolveSources: (sources) => tree(sources),
    baseConfig: (ref) => images.get(ref)?.config,
  })
  reportPlan(plan, dockerfileName, images)

  const workDir = await mkdtemp(path.join(process.env.RUNNER_TEMP || os.tmpdir(), 'sandbox-action-build-'))
  try {
    const downloads = await downloadUrlFiles(plan, workDir, signal)
    const inline = new Map<string, LocalFile>()
    await materializeInline(workDir, plan.stages.flatMap((stage) => stage.steps), inline)

    const keyed = keyStages(plan, images, downloads, inputs)
    const target = keyed.at(-1) as KeyedStage
    const buildDigest = buildCacheKey(target.resultKey, keyed.flatMap((k) => [k.baseKey, ...k.keys, k.resultKey]))
    const scope = await ctx.cache.scope(signal)
    const cacheKeys = scope ? buildKeys(scope, dockerfileId(dockerfileName, contextName), buildDigest) : undefined
    // no-cache: nothing is restored, everything runs, and the fresh map is saved as the newest entry.
    const restored = inputs.noCache || !cacheKeys ? undefined : await cache.restore(cacheKeys.lookup, cacheKeys.restorePrefixes)
    const exactBuild = restored !== undefined && cacheKeys !== undefined && isExactMatch(cacheKeys, restored.matchedKey)
    const known = readStepMap(restored?.data)
    const runAs = readRunAs(restored?.data)
    const fileIds: FileIds = { remembered: readFileIds(restored?.data), used: new Map() }
    if (restored) say(`Build cache: found ${Object.keys(known).length} step image(s) from ${exactBuild ? 'this exact build' : 'an earlier build of this Dockerfile'}.`)

    const total = keyed.reduce((sum, k) => sum + k.stage.steps.length, 0)
    const rows: BuildSummaryStep[] = []
    const built: Record<string, string> = {}
    const stageImages = new Map<number, string>()
    const fromImages = new Map([...images].map(([ref, image]) => [ref, image.uuid]))
    const stepContext: StepContext = {
      provider,
      signal,
      fileName: dockerfileName,
      stageImages,
      fromImages,
      downloads,
      secrets: build.secrets,
      users: new UserDbCache(provider, signal),
      resolveTree: tree,
      workDir,
      inline,
    }
    let allCached = true
    let number = 0
    let current = ''
    const summarize = (uuid: string): void => {
      ctx.report.buildSummary = renderBuildSummary({ imageUuid: uuid, digest: `sha256:${buildDigest}`, tag: inputs.tag ?? null, cacheHit: allCached, steps: rows })
    }

    for (const { stage, label, keys } of keyed) {
      current = stage.base.kind === 'stage' ? (stageImages.get(stage.base.index) as string) : (images.get(stage.base.ref) as PreparedImage).uuid
      for (const step of stage.steps) {
        number++
        const title = `Step ${number}/${total}${label}: ${step.instruction}`
        const key = keys[step.index] as string
        const cached = known[key]
        if (cached && !inputs.noCache) {
          if (await provider.imageExists(cached, signal)) {
            say(`${title} — CACHED (image ${cached})`)
            rememberFiles(step, fileIds)
            current = cached
            built[key] = cached
            rows.push({ index: number, instruction: step.instruction, outcome: 'cached', resultImage: cached })
            continue
          }
          say(`${title}: the cached image ${cached} no longer exists on the service; running the step again.`)
        }
        allCached = false
        const started = Date.now()
        let ran: { outcome: OperationOutcome; verdict: Verdict }
        try {
          ran = await runStep(ctx, stepContext, step, current, fileIds, title, `build step ${number}/${total}`)
        } catch (error) {
          rows.push({ index: number, instruction: step.instruction, outcome: 'failed', durationMs: Date.now() - started })
          summarize(current)
          throw error
        }
        const { outcome, verdict } = ran
        if (!verdict.ok || !outcome.resultImage) {
          rows.push({ index: number, instruction: step.instruction, outcome: 'failed', durationMs: outcome.durationMs })
          summarize(current)
          throw new Error(verdict.ok ? `Step ${number}/${total} produced no image (operation ${outcome.operationId})` : verdict.message)
        }
        current = outcome.resultImage
        built[key] = current
        rows.push({ index: number, instruction: step.instruction, outcome: 'built', durationMs: outcome.durationMs, resultImage: current })
      }
      stageImages.set(stage.index, current)
    }

    const final = target.stage.final
    const user = runAs[target.resultKey] ?? (await finalUser(final, current, stepContext, target.stage.line, dockerfileName))
    if (inputs.tag) {
      await provider.tagImage(current, inputs.tag, signal)
      say(`Tagged image ${current} as ${inputs.tag}.`)
    }
    const cacheHit = total === 0 ? [...images.values()].every((image) => image.cacheHit) : allCached
    summarize(current)
    if (exactBuild && allCached) {
      say('Build cache: this exact build is already cached.')
    } else if (cacheKeys && total > 0) {
      // Only a whole successful build is saved: a failed or cancelled one throws before reaching here.
      // A new entry each time (keys are immutable): it replaces a stale one for every later restore.
      const key = cacheKeys.saveKey()
      const entry: StepMap = { version: 2, steps: built, files: rememberedNext(fileIds), runAs: { [target.resultKey]: user } }
      const saved = await cache.save(key, entry)
      if (saved) say(`Build cache: saved ${Object.keys(built).length} step image(s) under ${key}.`)
      // So that a later Dockerfile can start FROM this image (by tag or id) with its config.
      await saveCarriedConfig(ctx, current, final)
    }
    say(`Built image ${current} (${cacheHit ? 'every step from cache' : `${rows.filter((r) => r.outcome === 'built').length} of ${total} step(s) built`}).`)
    return {
      uuid: current,
      digest: `sha256:${buildDigest}`,
      cacheHit,
      ...(inputs.tag ? { tag: inputs.tag } : {}),
      config: final,
      runDefaults: { cwd: final.workingDir || '/', env: envRecord(final.env), uid: user.uid, gid: user.gid },
    }
  } finally {
    await rm(workDir, { recursive: true, force: true }).catch(() => undefined)
  }
}

/** ADD unpacks local archives; the compressions the action cannot unpack are refused before anything remote. */
function checkArchives(plan: BuildPlan, fileName: string): void {
  for (const op of plan.stages.flatMap((stage) => stage.steps.flatMap((step) => step.ops))) {
    if (op.kind !== 'unpack') continue
    const head = Buffer.alloc(8)
    const fd = fs.openSync(op.archive.absPath, 'r')
    try {
      fs.readSync(fd, head, 0, 8, 0)
    } finally {
      fs.closeSync(fd)
    }
    const kind = sniffCompression(head)
    if (kind === 'bzip2' || kind === 'xz') {
      throw new DockerfileError(op.line, `ADD ${op.archive.relPath}: Docker would unpack this ${kind} archive; the action unpacks plain, gzip and zstd tar archives only (recompress it, or COPY it and unpack it in a RUN)`, fileName, { unsupported: true })
    }
  }
}

/** Keys of every needed stage: a stage's base key is its image's identity or the result key of the stage it is built FROM. */
function keyStages(plan: BuildPlan, images: ReadonlyMap<string, PreparedImage>, downloads: ReadonlyMap<string, LocalFile>, inputs: ImageContext['inputs']): KeyedStage[] {
  const stageKeys = new Map<number, string>()
  const imageIds = new Map([...images].map(([ref, image]) => [ref, image.digest ?? image.uuid]))
  const urlDigests = Object.fromEntries([...downloads].map(([url, file]) => [url, file.sha256]))
  const several = plan.stages.length > 1
  return plan.stages.map((stage) => {
    const baseKey =
      stage.base.kind === 'stage'
        ? (stageKeys.get(stage.base.index) as string)
        : fromKey({ provider: inputs.provider, endpoint: inputs.apiUrl, project: inputs.project ?? '', baseImage: imageIds.get(stage.base.ref) as string })
    const keys = stepKeys(baseKey, stage.steps, { urlDigests, stageKeys, imageIds })
    const resultKey = keys.at(-1) ?? configOnlyKey(baseKey, stage.final)
    stageKeys.set(stage.index, resultKey)
    const label = several ? ` [${stage.name ?? `stage ${stage.index}`}]` : ''
    return { stage, label, baseKey, keys, resultKey }
  })
}

/** The numeric user `docker run` of the built image would use, from the image's own /etc/passwd when it names one. */
async function finalUser(final: ImageConfig, image: string, ctx: StepContext, line: number, fileName: string): Promise<{ uid: number; gid: number }> {
  if (!needsUserDb(final.user, 'user')) return resolveUser(final.user, { passwd: [], group: [] })
  try {
    const user = resolveUser(final.user, await ctx.users.get(image))
    return { uid: user.uid, gid: user.gid }
  } catch (error) {
    if (error instanceof UserLookupError) throw new DockerfileError(line, `USER ${final.user}: ${error.message} of the built image`, fileName)
    throw error
  }
}

function reportPlan(plan: BuildPlan, dockerfileName: string, images: ReadonlyMap<string, PreparedImage>): void {
  for (const note of plan.notes) say(`${dockerfileName}:${note.line}: ${note.keyword}: ${note.note}`)
  for (const stage of plan.stages) {
    if (stage.base.kind !== 'image' || images.get(stage.base.ref)?.config) continue
    // Said once per base: the build still runs, from Docker's defaults rather than an empty environment.
    core.notice(
      annotationMessage(`${dockerfileName}:${stage.line}: FROM ${stage.base.ref}: the image's config (Env, WorkingDir, User) is unknown to the action (it was not imported from a registry by the action, nor built by it), so the stage starts from Docker's defaults: the default PATH, WORKDIR /, USER root.`),
    )
  }
  if (plan.unusedBuildArgs.length) warn(`build-args not consumed by any ARG in ${dockerfileName}: ${plan.unusedBuildArgs.join(', ')}`)
}

async function downloadUrlFiles(plan: BuildPlan, workDir: string, signal: AbortSignal): Promise<Map<string, LocalFile>> {
  const downloads = new Map<string, LocalFile>()
  for (const step of plan.stages.flatMap((stage) => stage.steps)) {
    for (const op of step.ops) {
      if (op.kind !== 'copy') continue
      for (const entry of op.entries) {
        const content = entry.content
        if (content?.kind !== 'url' || downloads.has(content.url)) continue
        const download = await downloadUrl(content.url, signal)
        if (content.checksum && content.checksum !== download.sha256) {
          throw new Error(`ADD ${displayUrl(content.url)}: checksum mismatch (expected sha256:${content.checksum}, got sha256:${download.sha256})`)
        }
        say(`Downloaded ${displayUrl(content.url)} (${download.bytes.byteLength} bytes, sha256:${download.sha256}).`)
        downloads.set(content.url, await materialize(workDir, download.bytes, download.sha256))
      }
    }
  }
  return downloads
}

/** How many file ids a build remembers for the next one (newest first): enough for large contexts, bounded. */
const REMEMBERED_FILES_LIMIT = 50_000

/**
 * The file ids the next build starts from: this build's, then those it inherited. Inherited ones
 * are kept because a cached step does not know its own helper and operations files without
 * preparing it, and the next edit may run it again.
 */
function rememberedNext(fileIds: FileIds): Record<string, string> {
  const merged = new Map(fileIds.used)
  for (const [sha, id] of fileIds.remembered) {
    if (merged.size >= REMEMBERED_FILES_LIMIT) break
    if (!merged.has(sha)) merged.set(sha, id)
  }
  return Object.fromEntries(merged)
}

/** A cached step keeps the file ids of the context files it placed, for the next build to remember. */
function rememberFiles(step: BuildStep, fileIds: FileIds): void {
  for (const op of step.ops) {
    if (op.kind !== 'copy') continue
    for (const entry of op.entries) {
      if (entry.content?.kind !== 'context') continue
      const id = fileIds.remembered.get(entry.content.file.sha256)
      if (id) fileIds.used.set(entry.content.file.sha256, id)
    }
  }
}

async function runStep(
  ctx: ImageContext,
  stepContext: StepContext,
  step: BuildStep,
  image: string,
  fileIds: FileIds,
  title: string,
  label: string,
): Promise<{ outcome: OperationOutcome; verdict: Verdict }> {
  const { provider, signal, inputs } = ctx
  const prepared = await prepareStep(stepContext, step, image)
  const placements = Object.values(prepared.placements)
  const placeFiles = async (trustRemembered: boolean): Promise<Record<string, SandboxFile>> => {
    const stored = await provider.ensureFiles(
      placements.map((placement) => placement.file),
      signal,
      trustRemembered ? fileIds.remembered : undefined,
    )
    const files: Record<string, SandboxFile> = {}
    for (const [sandboxPath, placement] of Object.entries(prepared.placements)) {
      const uuid = stored.ids.get(placement.file.sha256) as string
      fileIds.used.set(placement.file.sha256, uuid)
      files[sandboxPath] = { uuid, mode: placement.mode, uid: placement.uid, gid: placement.gid }
    }
    if (stored.uploaded) say(`${title}: uploaded ${stored.uploaded} new file(s), ${stored.uploadedBytes} bytes.`)
    return files
  }
  const usesRemembered = placements.some((placement) => fileIds.remembered.has(placement.file.sha256))
  const spawn = async (files: Record<string, SandboxFile>, group: LogGroup): Promise<OperationOutcome> =>
    provider.run(
      {
        image,
        command: prepared.command,
        args: prepared.args,
        shell: false,
        env: prepared.env,
        // The helper creates the working directory and switches to the step's user itself.
        cwd: '/',
        uid: 0,
        gid: 0,
        ...(prepared.network ? {} : { network: false }),
        timeoutSeconds: inputs.timeoutSeconds,
        disposable: false,
        files,
        outputLimitBytes: inputs.outputLimitBytes,
      },
      group,
      { label, signal, deadlineMs: inputs.deadlineSeconds * 1000 },
    )

  const files = await placeFiles(true)
  const judging = { timeoutSeconds: inputs.timeoutSeconds, expectsExitCode: true }
  const { outcome, group } = await inLogGroup(ctx.log, title, title, judging, async (group) => {
    try {
      return await spawn(files, group)
    } catch (error) {
      // A remembered file id the service no longer has makes it refuse the spawn (nothing ran):
      // check every file for real and try once more.
      if (!usesRemembered || !isRejectedRequest(error)) throw error
      say(`${title}: the service refused the step (${errorMessage(error)}); checking its files again.`)
      return spawn(await placeFiles(false), group)
    }
  })
  const verdict = judge(outcome, title, judging)
  if (!verdict.ok) reportFailure(group.tail(), verdict.message)
  return { outcome, verdict }
}

/** A 4xx the service answers before doing anything, other than auth and throttling (which a retry cannot fix). */
function isRejectedRequest(error: unknown): boolean {
  return error instanceof HttpError && error.status >= 400 && error.status < 500 && ![401, 403, 425, 429].includes(error.status)
}

function readFileIds(data: unknown): Map<string, string> {
  if (typeof data !== 'object' || data === null) return new Map()
  const files = (data as Partial<StepMap>).files
  if (typeof files !== 'object' || files === null) return new Map()
  return new Map(Object.entries(files).filter((entry): entry is [string, string] => typeof entry[1] === 'string' && /^[0-9a-f]{64}$/.test(entry[0])))
}

function readStepMap(data: unknown): Record<string, string> {
  if (typeof data !== 'object' || data === null) return {}
  const steps = (data as Partial<StepMap>).steps
  if (typeof steps !== 'object' || steps === null) return {}
  return Object.fromEntries(Object.entries(steps).filter((entry): entry is [string, string] => typeof entry[1] === 'string'))
}

function readRunAs(data: unknown): Record<string, { uid: number; gid: number }> {
  if (typeof data !== 'object' || data === null) return {}
  const runAs = (data as Partial<StepMap>).runAs
  if (typeof runAs !== 'object' || runAs === null) return {}
  const out: Record<string, { uid: number; gid: number }> = {}
  for (const [key, value] of Object.entries(runAs)) {
    if (typeof value?.uid === 'number' && typeof value.gid === 'number') out[key] = { uid: value.uid, gid: value.gid }
  }
  return out
}
