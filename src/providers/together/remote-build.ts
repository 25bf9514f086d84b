/**
 * One build on the remote builder, from the upload of its context to a pushed image: the build is
 * registered as live work the moment its id exists, its log streams into its own group, and a build
 * the action loses (its deadline, a log stream that cannot be read) is deleted right away rather than
 * left to run. Cancellation on a signal is the registry's: this only stops waiting.
 */
import { randomUUID } from 'node:crypto'
import { errorMessage } from '../../errors.ts'
import type { Sleep } from '../../http/sleep.ts'
import { formatDuration } from '../../output/format.ts'
import type { LiveWork, ProviderContext } from '../types.ts'
import { OperationInterruptedError } from '../types.ts'
import { followBuildLog } from './build-log.ts'
import type { TogetherBuilder } from './builder.ts'
import { contextArchive, type ArchiveOptions } from './context-archive.ts'
import type { ContextTree } from './context-tree.ts'
import { DeadlineExceededError } from './wait-budget.ts'

export interface RemoteBuildRequest {
  tree: Pick<ContextTree, 'files' | 'dirs' | 'links' | 'dockerfile'>
  buildArgs: Record<string, string>
  cacheKey?: string
  /** Group title, e.g. "Build Dockerfile (Together builder)". */
  title: string
  /** Short name for status lines and state, e.g. "build Dockerfile". */
  label: string
  /** From the moment the build exists to its image. */
  deadlineMs: number
}

export interface RemoteBuildResult {
  buildId: string
  imageRef: string
  durationMs: number
}

export interface RemoteBuildOptions {
  compression?: ArchiveOptions['compression']
  /** Bound on the DELETE of a build the action gave up on. */
  cancelTimeoutMs: number
  sleep?: Sleep
}

/** The builder reported the build as failed: the Dockerfile or its context, not the service. */
export class RemoteBuildFailedError extends Error {
  readonly buildId: string
  constructor(message: string, buildId: string) {
    super(message)
    this.name = 'RemoteBuildFailedError'
    this.buildId = buildId
  }
}

export async function runRemoteBuild(
  builder: Pick<TogetherBuilder, 'submit' | 'openLogs' | 'status' | 'cancel' | 'baseUrl'>,
  request: RemoteBuildRequest,
  ctx: ProviderContext,
  options: RemoteBuildOptions,
): Promise<RemoteBuildResult> {
  ctx.signal.throwIfAborted()
  // Unique per build, as the SDKs name them: builds of one token share a namespace.
  const imageName = `sandbox-action-${randomUUID()}:${randomUUID()}`
  const buildId = await builder.submit(
    {
      imageName,
      dockerfile: request.tree.dockerfile,
      buildArgs: request.buildArgs,
      nydus: true,
      ...(request.cacheKey ? { cacheKey: request.cacheKey } : {}),
      context: () => untilAborted(contextArchive(request.tree, options.compression === undefined ? {} : { compression: options.compression }), ctx.signal),
    },
    ctx.signal,
  )
  const started = performance.now()
  const work = { provider: 'together', kind: 'build', id: buildId } as const
  ctx.registry.add({ ...work, endpoint: builder.baseUrl, label: request.label })
  ctx.debug(`${request.label}: build ${buildId} submitted`)

  const group = ctx.log.open(request.title)
  let end
  try {
    end = await followBuildLog(builder, buildId, group, {
      signal: ctx.signal,
      deadline: started + request.deadlineMs,
      log: ctx.debug,
      ...(options.sleep ? { sleep: options.sleep } : {}),
    })
  } catch (error) {
    if (ctx.signal.aborted) {
      group.end(`✗ ${request.label}: cancelled`)
      throw error
    }
    const cancelled = await cancelLostBuild(builder, work, options.cancelTimeoutMs, ctx)
    const what =
      error instanceof DeadlineExceededError
        ? `build ${buildId} did not finish within ${formatDuration(request.deadlineMs)}`
        : `lost track of build ${buildId}: ${errorMessage(error)}`
    const message = `${request.label}: ${what}; ${cancelled ? 'it was cancelled' : 'cancelling it failed, the post step will try again'}`
    group.end(`✗ ${request.label}: ${what}`)
    throw new OperationInterruptedError({ operationId: buildId, label: request.label, lastStatus: cancelled ? 'CANCELLED' : null, message, cause: error })
  }
  const durationMs = performance.now() - started
  if (end.kind === 'error') {
    ctx.registry.finish(work)
    group.end(`✗ ${request.label} failed after ${formatDuration(durationMs)}`)
    const message = ctx.log.reportFailure(group.tail(), `The remote build failed: ${end.message} (build ${buildId})`)
    throw new RemoteBuildFailedError(message, buildId)
  }
  group.end(`✓ ${request.label} done in ${formatDuration(durationMs)}`)
  const status = await builder.status(buildId, ctx.signal)
  ctx.registry.finish(work)
  const imageRef = status?.image_ref
  if (typeof imageRef !== 'string' || imageRef === '') {
    throw new Error(`${request.label}: build ${buildId} reported done, but the builder names no image_ref for it${status ? ` (status: ${JSON.stringify(status).slice(0, 300)})` : ' (it no longer knows the build)'}`)
  }
  return { buildId, imageRef, durationMs }
}

/** Deletes a build the action will not wait for; true when the builder took the request. */
async function cancelLostBuild(builder: Pick<TogetherBuilder, 'cancel'>, work: Pick<LiveWork, 'provider' | 'kind' | 'id'>, timeoutMs: number, ctx: ProviderContext): Promise<boolean> {
  try {
    await builder.cancel(work.id, { timeoutMs })
    ctx.registry.finish(work)
    return true
  } catch (error) {
    ctx.debug(`cancelling build ${work.id} failed: ${errorMessage(error)}`)
    return false
  }
}

/**
 * The upload stops at the first chunk after a signal: with its closing boundary never sent, the form
 * is incomplete and no build can have been created from it. Once all of it is sent, the create is
 * never cut off (its answer may carry a build id that must be cancelled).
 */
async function* untilAborted(stream: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) {
    signal.throwIfAborted()
    yield chunk
  }
}
