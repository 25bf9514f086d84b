/**
 * Builds a Dockerfile remotely, step by step: each RUN (with the files COPY/ADD placed before it) is
 * one operation on the previous step's image, streamed live in its own group. Every step has a key
 * chained from the base image and everything before it; a step whose key maps to an image that
 * still exists is CACHED and spawns nothing. The key → image map travels between runners in the
 * Actions cache: the exact key is the whole build, the restore prefix finds the latest build of the
 * same Dockerfile, so an edit late in the file reuses every unchanged step before it.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { buildKeys, dockerfileId, isExactMatch } from './cache/keys.ts'
import { createSourceResolver } from './build/context.ts'
import { parseDockerfile } from './build/dockerfile.ts'
import { createIgnoreMatcher, readDockerignore } from './build/dockerignore.ts'
import { createBuildPlan, type BuildPlan, type BuildStep } from './build/plan.ts'
import { buildCacheKey, fromKey, stepKeys } from './build/step-key.ts'
import { displayUrl, downloadUrl, type Download } from './download.ts'
import { errorMessage, InputError } from './errors.ts'
import { HttpError } from './http/errors.ts'
import { resolveImage, type ImageContext, type PreparedImage } from './image.ts'
import { parseBaseImage } from './inputs.ts'
import { inLogGroup } from './operation-group.ts'
import { judge, type Verdict } from './outcome.ts'
import { reportFailure, type RemoteLogGroup } from './output/remote-log.ts'
import { say, warn } from './output/say.ts'
import { renderBuildSummary, type BuildSummaryStep } from './output/summary.ts'
import type { OperationOutcome, SandboxFile } from './providers/types.ts'

interface StepMap {
  version: 1
  /** Step key → image UUID, for the steps of one successful build. */
  steps: Record<string, string>
  /**
   * Content sha256 → remote file id of the files that build placed, so the next build does not probe
   * thousands of unchanged files one request at a time. Trusted until a spawn says otherwise.
   */
  files?: Record<string, string>
}

/** File ids remembered from the last build, and the ids this build used (what the next one remembers). */
interface FileIds {
  remembered: Map<string, string>
  used: Map<string, string>
}

export async function buildImage(ctx: ImageContext): Promise<PreparedImage> {
  const { inputs, provider, signal } = ctx
  const cache = ctx.cache.store
  const build = inputs.build
  if (!build) throw new Error('internal: no build inputs')
  const dockerfileName = path.relative(inputs.workspace, build.dockerfile) || 'Dockerfile'
  const contextName = path.relative(inputs.workspace, build.context) || '.'

  // Everything local (parse, plan, hash the context) before anything remote.
  const plan = await planBuild(build.dockerfile, dockerfileName, build.context, build.buildArgs)
  const downloads = await downloadUrlFiles(plan, signal)

  let baseSpec
  try {
    baseSpec = parseBaseImage(plan.from.ref)
  } catch (error) {
    throw new Error(`${dockerfileName}:${plan.from.line}: FROM ${plan.from.ref}: ${errorMessage(error).replace(/^Input 'image': /, '')}`)
  }
  const base = await resolveImage(ctx, baseSpec)
  const baseKey = fromKey({ provider: inputs.provider, endpoint: inputs.apiUrl, project: inputs.project ?? '', baseImage: base.digest ?? base.uuid })
  const urlDigests = Object.fromEntries([...downloads].map(([url, download]) => [url, download.sha256]))
  const keys = stepKeys(baseKey, plan.steps, urlDigests)
  const buildDigest = buildCacheKey(baseKey, keys)
  const scope = await ctx.cache.scope(signal)
  const cacheKeys = scope ? buildKeys(scope, dockerfileId(dockerfileName, contextName), buildDigest) : undefined

  // no-cache: nothing is restored, everything runs, and the fresh map is saved as the newest entry.
  const restored = inputs.noCache || !cacheKeys ? undefined : await cache.restore(cacheKeys.lookup, cacheKeys.restorePrefixes)
  const exactBuild = restored !== undefined && cacheKeys !== undefined && isExactMatch(cacheKeys, restored.matchedKey)
  const known = readStepMap(restored?.data)
  const fileIds: FileIds = { remembered: readFileIds(restored?.data), used: new Map() }
  if (restored) say(`Build cache: found ${Object.keys(known).length} step image(s) from ${exactBuild ? 'this exact build' : 'an earlier build of this Dockerfile'}.`)

  const total = plan.steps.length
  const rows: BuildSummaryStep[] = []
  const built: Record<string, string> = {}
  let current = base.uuid
  let allCached = true
  const summarize = (uuid: string): void => {
    ctx.report.buildSummary = renderBuildSummary({
      imageUuid: uuid,
      digest: `sha256:${buildDigest}`,
      tag: inputs.tag ?? null,
      cacheHit: allCached,
      steps: rows,
    })
  }

  for (const step of plan.steps) {
    const number = step.index + 1
    const title = `Step ${number}/${total}: ${step.instruction}`
    const key = keys[step.index] as string
    const cached = known[key]
    if (cached && !inputs.noCache) {
      if (await provider.imageExists(cached, signal)) {
        say(`${title} — CACHED (image ${cached})`)
        for (const pending of step.files) {
          const id = fileIds.remembered.get(pending.file.sha256)
          if (id) fileIds.used.set(pending.file.sha256, id)
        }
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
      ran = await runStep(ctx, step, current, downloads, fileIds, title, `build step ${number}/${total}`)
    } catch (error) {
      rows.push({ index: number, instruction: step.instruction, outcome: 'failed', durationMs: Date.now() - started })
      summarize(current)
      throw error
    }
    const { outcome, verdict } = ran
    if (!verdict.ok || !outcome.resultImage) {
      rows.push({ index: number, instruction: step.instruction, outcome: 'failed', durationMs: outcome.durationMs })
      summarize(current)
      const message = verdict.ok ? `Step ${number}/${total} produced no image (operation ${outcome.operationId})` : verdict.message
      throw new Error(message)
    }
    current = outcome.resultImage
    built[key] = current
    rows.push({ index: number, instruction: step.instruction, outcome: 'built', durationMs: outcome.durationMs, resultImage: current })
  }

  if (inputs.tag) {
    await provider.tagImage(current, inputs.tag, signal)
    say(`Tagged image ${current} as ${inputs.tag}.`)
  }
  const cacheHit = total === 0 ? base.cacheHit : allCached
  summarize(current)
  if (exactBuild && allCached) {
    say('Build cache: this exact build is already cached.')
  } else if (cacheKeys && total > 0) {
    // Only a whole successful build is saved: a failed or cancelled one throws before reaching here.
    // A new entry each time (keys are immutable): it replaces a stale one for every later restore.
    const key = cacheKeys.saveKey()
    const saved = await cache.save(key, { version: 1, steps: built, files: Object.fromEntries(fileIds.used) } satisfies StepMap)
    if (saved) say(`Build cache: saved ${Object.keys(built).length} step image(s) under ${key}.`)
  }
  say(`Built image ${current} (${cacheHit ? 'every step from cache' : `${rows.filter((r) => r.outcome === 'built').length} of ${total} step(s) built`}).`)
  return {
    uuid: current,
    digest: `sha256:${buildDigest}`,
    cacheHit,
    ...(inputs.tag ? { tag: inputs.tag } : {}),
    runDefaults: { cwd: plan.final.cwd, env: plan.final.env, ...(plan.final.user ? { user: plan.final.user } : {}) },
  }
}

async function planBuild(dockerfile: string, dockerfileName: string, context: string, buildArgs: Record<string, string>): Promise<BuildPlan> {
  let text: string
  try {
    text = fs.readFileSync(dockerfile, 'utf8')
  } catch (error) {
    throw new InputError('dockerfile', `cannot read ${dockerfileName}: ${errorMessage(error)}`)
  }
  const parsed = parseDockerfile(text, { fileName: dockerfileName })
  const matcher = createIgnoreMatcher(await readDockerignore(context))
  const resolve = createSourceResolver(context, matcher)
  const plan = await createBuildPlan(parsed, { buildArgs, resolveSources: (sources) => resolve(sources) })
  for (const note of plan.notes) say(`${dockerfileName}:${note.line}: ${note.keyword}: ${note.note}`)
  if (plan.unusedBuildArgs.length) {
    warn(`build-args not consumed by any ARG in ${dockerfileName}: ${plan.unusedBuildArgs.join(', ')}`)
  }
  return plan
}

async function downloadUrlFiles(plan: BuildPlan, signal: AbortSignal): Promise<Map<string, Download>> {
  const downloads = new Map<string, Download>()
  for (const step of plan.steps) {
    for (const urlFile of step.urlFiles) {
      if (downloads.has(urlFile.url)) continue
      const download = await downloadUrl(urlFile.url, signal)
      if (urlFile.checksum && urlFile.checksum !== download.sha256) {
        throw new Error(`ADD ${displayUrl(urlFile.url)}: checksum mismatch (expected sha256:${urlFile.checksum}, got sha256:${download.sha256})`)
      }
      say(`Downloaded ${displayUrl(urlFile.url)} (${download.bytes.byteLength} bytes, sha256:${download.sha256}).`)
      downloads.set(urlFile.url, download)
    }
  }
  return downloads
}

async function runStep(
  ctx: ImageContext,
  step: BuildStep,
  image: string,
  downloads: Map<string, Download>,
  fileIds: FileIds,
  title: string,
  label: string,
): Promise<{ outcome: OperationOutcome; verdict: Verdict }> {
  const { provider, signal, inputs } = ctx
  const placeFiles = async (trustRemembered: boolean): Promise<Record<string, SandboxFile>> => {
    const files: Record<string, SandboxFile> = {}
    if (step.files.length) {
      const stored = await provider.ensureFiles(
        step.files.map((pending) => pending.file),
        signal,
        trustRemembered ? fileIds.remembered : undefined,
      )
      for (const pending of step.files) {
        const uuid = stored.ids.get(pending.file.sha256) as string
        fileIds.used.set(pending.file.sha256, uuid)
        files[pending.path] = { uuid, mode: pending.mode, uid: pending.uid, gid: pending.gid }
      }
      if (stored.uploaded) say(`${title}: uploaded ${stored.uploaded} new file(s), ${stored.uploadedBytes} bytes.`)
    }
    for (const urlFile of step.urlFiles) {
      const download = downloads.get(urlFile.url)
      if (!download) throw new Error(`internal: ${urlFile.url} was not downloaded`)
      files[urlFile.dest] = { uuid: await provider.storeBytes(download.bytes, signal), mode: urlFile.mode, uid: urlFile.uid, gid: urlFile.gid }
    }
    return files
  }
  const usesRemembered = step.files.some((pending) => fileIds.remembered.has(pending.file.sha256))
  const run = step.run ?? { command: 'true', shell: true }
  const spawn = async (files: Record<string, SandboxFile>, group: RemoteLogGroup): Promise<OperationOutcome> =>
    provider.run(
      {
        image,
        command: run.command,
        shell: run.shell,
        ...(run.args ? { args: run.args } : {}),
        env: step.env,
        cwd: step.cwd,
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
