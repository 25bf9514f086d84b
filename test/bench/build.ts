/**
 * Figure 5: a 10-instruction Dockerfile over a 5,000-file context, built cold, rebuilt with no change
 * and rebuilt after a one-file change. Every run is a different runner (fresh runner dir), so what
 * carries the step map between them is the real @actions/cache through the cache-service emulator.
 */
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { startCacheService, type CacheService } from '../emulator/cache-service.ts'
import { requireSuccess, runBounded } from './bounded-action.ts'
import { benchTempDir, dirName, fileName, makeContext, type ContextFixture } from './context-fixture.ts'
import { TOKEN, withEmulator } from './emulators.ts'
import { contextHashing } from './hashing.ts'
import { emit, emitError, MB, progress, round } from './report.ts'

const CHANGED_FILE = path.join(dirName(25), fileName(50))

// Shaped like a real one: a dependency-like step first (cached when only sources change), then the
// whole context, then steps over it. COPY/ENV/WORKDIR have no spawn of their own: three RUN steps.
const DOCKERFILE = [
  'FROM busybox:latest',
  'ENV APP_HOME=/app',
  'WORKDIR $APP_HOME',
  `COPY ${dirName(0)}/ ./first/`,
  'RUN find /app/first -type f | wc -l > /app/count.txt && touch /app/step1',
  'ENV STAGE=bench',
  'COPY . ./all/',
  `RUN mkdir -p /app/out && cp /app/all/${dirName(0)}/${fileName(0)} /app/out/ && find /app/all -type f | wc -l > /app/out/all.txt`,
  `COPY ${dirName(49)}/${fileName(99)} /app/out/last.txt`,
  'RUN cat /app/count.txt /app/out/all.txt && ls /app/out | wc -l && echo "$STAGE done"',
].join('\n')

interface BuildRun {
  label: string
  ms: number
  uploadBytes: number
  uploads: number
  spawns: number
  cached: number
  cacheHit: string | undefined
  imageUuid: string | undefined
  /** Committed entries in the cache service after this run. */
  cacheEntries: number
  /** First to last upload arrival: how much of the wall time is the upload phase. */
  uploadPhaseMs: number
  requests: number
  /** Request counts by method and path shape (ids replaced), to see where the round trips go. */
  requestKinds: Record<string, number>
}

function requestKinds(emulator: ContreeEmulator): Record<string, number> {
  const kinds: Record<string, number> = {}
  for (const request of emulator.requests) {
    const shape = request.path.replace(/\/[0-9a-f-]{16,}(?=\/|$)/gi, '/:id')
    const kind = `${request.method} ${shape}${Object.keys(request.query).length > 0 ? `?${Object.keys(request.query).sort().join('&')}` : ''}`
    kinds[kind] = (kinds[kind] ?? 0) + 1
  }
  return kinds
}

async function buildOnce(label: string, emulator: ContreeEmulator, cache: CacheService, workspace: string): Promise<BuildRun> {
  emulator.reset()
  progress(`build: ${label} build`)
  const started = performance.now()
  const result = await runBounded(
    {
      workspace,
      inputs: { 'api-url': emulator.url, token: TOKEN, dockerfile: 'Dockerfile', context: 'ctx', timeout: '300' },
      env: cache.env(),
    },
    300_000,
  )
  const ms = performance.now() - started
  requireSuccess(result, `${label} build`)
  const uploads = emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/files')
  const run: BuildRun = {
    label,
    ms,
    uploadBytes: uploads.reduce((sum, r) => sum + r.bodyBytes, 0),
    uploads: uploads.length,
    spawns: emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/instances').length,
    cached: result.stdout.match(/CACHED/g)?.length ?? 0,
    cacheHit: result.outputs['cache-hit'],
    imageUuid: result.outputs['image-uuid'],
    cacheEntries: cache.entries().length,
    uploadPhaseMs: uploads.length === 0 ? 0 : (uploads.at(-1)?.at ?? 0) - (uploads[0]?.at ?? 0),
    requests: emulator.requests.length,
    requestKinds: requestKinds(emulator),
  }
  progress(`build: ${label}: ${Math.round(ms)} ms, ${run.uploads} uploads (${run.uploadBytes} B), ${run.spawns} spawns, ${run.cached} CACHED`)
  return run
}

function details(run: BuildRun): Record<string, unknown> {
  return {
    ms: Math.round(run.ms),
    uploads: run.uploads,
    upload_bytes: run.uploadBytes,
    spawns: run.spawns,
    cached_steps: run.cached,
    cache_hit: run.cacheHit,
    cache_entries_after: run.cacheEntries,
    upload_phase_ms: run.uploadPhaseMs,
    api_requests: run.requests,
    requests_by_kind: run.requestKinds,
  }
}

// Figure 5b: the shape of most production Dockerfiles: a builder stage over the same 5,000-file
// context, and a final stage that takes its output with COPY --from (read back through the inspect
// archive route).
const MULTI_STAGE_DOCKERFILE = [
  'FROM busybox:latest AS builder',
  'WORKDIR /src',
  'COPY . ./',
  'RUN mkdir -p /out && find /src -type f | wc -l > /out/count.txt && tar -cf /out/src.tar -C /src .',
  '',
  'FROM busybox:latest',
  'COPY --from=builder /out /app/',
  'RUN cat /app/count.txt && ls -l /app',
].join('\n')

async function multiStageFigures(cache: CacheService, scratch: string): Promise<void> {
  const workspace = path.join(scratch, 'multi-stage')
  mkdirSync(workspace)
  makeContext(path.join(workspace, 'ctx'))
  writeFileSync(path.join(workspace, 'Dockerfile'), `${MULTI_STAGE_DOCKERFILE}\n`)
  const runs = await withEmulator(async (emulator) => [await buildOnce('multi-stage cold', emulator, cache, workspace), await buildOnce('multi-stage warm', emulator, cache, workspace)]).catch(
    (error: unknown) => error,
  )
  if (runs instanceof Error || !Array.isArray(runs)) {
    emitError('build.multistage_warm_ratio', 'ratio', '<= 0.1 of cold', runs)
    return
  }
  const [cold, warm] = runs as [BuildRun, BuildRun]
  emit({ figure: 'build.multistage_cold', value: Math.round(cold.ms), unit: 'ms', goal: 'informational (the baseline)', ...details(cold) })
  emit({ figure: 'build.multistage_warm_ratio', value: round(warm.ms / cold.ms), unit: 'ratio', goal: '<= 0.1 of cold', ...details(warm), same_image: warm.imageUuid === cold.imageUuid })
}

export async function buildFigures(options: { hashing?: boolean } = {}): Promise<void> {
  const goalWarm = '<= 0.1 of cold'
  const scratch = benchTempDir('bench-build-')
  let cache: CacheService | undefined
  let fixture: ContextFixture | undefined
  try {
    const workspace = path.join(scratch, 'workspace')
    mkdirSync(workspace)
    const ctx = path.join(workspace, 'ctx')
    fixture = makeContext(ctx)
    writeFileSync(path.join(workspace, 'Dockerfile'), `${DOCKERFILE}\n`)
    progress(`build: context ${fixture.files} files, ${round(fixture.bytes / MB, 1)} MB`)

    cache = await startCacheService()
    const cacheService = cache
    const runs = await withEmulator(async (emulator) => {
      const done: BuildRun[] = []
      const record = async (label: string): Promise<void> => {
        done.push(await buildOnce(label, emulator, cacheService, workspace))
      }
      await record('cold')
      await record('warm')
      appendFileSync(path.join(ctx, CHANGED_FILE), 'one changed line\n')
      await record('one-file-change')
      return done
    }).catch((error: unknown) => error)

    if (runs instanceof Error || !Array.isArray(runs)) {
      for (const [figure, unit, goal] of [
        ['build.cold', 'ms', 'informational (the baseline)'],
        ['build.warm_ratio', 'ratio', goalWarm],
        ['build.one_file_change_ratio', 'ratio', 'informational'],
        ['build.warm_upload_bytes', 'bytes', '0'],
      ] as const) {
        emitError(figure, unit, goal, runs)
      }
    } else {
      const [cold, warm, changed] = runs as [BuildRun, BuildRun, BuildRun]
      emit({ figure: 'build.cold', value: Math.round(cold.ms), unit: 'ms', goal: 'informational (the baseline)', ...details(cold) })
      emit({ figure: 'build.warm_ratio', value: round(warm.ms / cold.ms), unit: 'ratio', goal: goalWarm, ...details(warm), same_image: warm.imageUuid === cold.imageUuid })
      emit({ figure: 'build.one_file_change_ratio', value: round(changed.ms / cold.ms), unit: 'ratio', goal: 'informational', changed_file: CHANGED_FILE, ...details(changed) })
      emit({ figure: 'build.warm_upload_bytes', value: warm.uploadBytes, unit: 'bytes', goal: '0', uploads: warm.uploads })
    }
    await multiStageFigures(cache, scratch)
    if (options.hashing ?? true) await contextHashing(fixture)
  } catch (error) {
    emitError('build', '-', 'setup', error)
  } finally {
    await cache?.close()
    rmSync(scratch, { recursive: true, force: true })
  }
}
