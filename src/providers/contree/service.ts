/**
 * The ConTree service for the ConTree provider's own parts (image resolution, the build executor, the
 * run): maps their requests onto the v1 API and registers every operation with the remote-work
 * registry the moment its id exists.
 */
import * as fs from 'node:fs'
import type { LiveWorkRegistry } from '../types.ts'
import type { LiveWork } from '../../state.ts'
import { errorMessage } from '../../errors.ts'
import { HttpError } from '../../http/errors.ts'
import type { Platform } from '../../image/image-config.ts'
import { isTerminal, OperationInterruptedError, type LocalFile, type OperationOutcome, type OperationStatus, type OutputSink } from '../types.ts'
import type { ContreeServiceApi, SpawnRequest, StartOptions } from './service-types.ts'
import { ContreeApi } from './api.ts'
import { FollowTimeoutError } from './follow.ts'
import { watchOperation } from './watch.ts'
import { mapLimit } from '../../concurrency.ts'

export interface ContreeServiceOptions {
  apiUrl: string
  token: string
  project?: string
  userAgent: string
  /** Where started operations are recorded; the post step, which starts none, passes none. */
  registry?: LiveWorkRegistry
  /** Injected in tests. */
  api?: ContreeApi
  /** Diagnostics of the event follower (reconnects, drains), e.g. core.debug. */
  debug?: (message: string) => void
  /** Silence on an event stream before it counts as dead (default: the API's). */
  eventsIdleTimeoutMs?: number
}

/** How long the status read after a lost operation may take: it only decides the words of the error. */
const LOST_STATUS_TIMEOUT_MS = 5000

/** Upload/probe concurrency: enough to hide latency, few enough not to trip rate limits. */
const FILE_CONCURRENCY = 8

export class ContreeService implements ContreeServiceApi {
  readonly name = 'contree'
  /** ConTree sandboxes are linux/amd64 VMs. */
  readonly platform: Platform = { os: 'linux', architecture: 'amd64' }
  readonly api: ContreeApi
  private readonly options: ContreeServiceOptions

  constructor(options: ContreeServiceOptions) {
    this.options = options
    this.api =
      options.api ??
      new ContreeApi({
        baseUrl: options.apiUrl,
        token: options.token,
        ...(options.project ? { project: options.project } : {}),
        userAgent: options.userAgent,
        ...(options.eventsIdleTimeoutMs ? { eventsIdleTimeoutMs: options.eventsIdleTimeoutMs } : {}),
      })
  }

  async accountId(signal?: AbortSignal): Promise<string> {
    const whoami = await this.api.whoami(signal)
    if (typeof whoami.token_uuid !== 'string' || whoami.token_uuid === '') throw new Error('GET /v1/whoami named no token_uuid')
    return `token:${whoami.token_uuid}`
  }

  async findImage(ref: { uuid: string } | { tag: string }, signal?: AbortSignal): Promise<string | null> {
    if ('uuid' in ref) return (await this.imageExists(ref.uuid, signal)) ? ref.uuid : null
    return this.api.findImageByTag(ref.tag, signal)
  }

  async imageExists(uuid: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.api.getImage(uuid, signal)) !== null
  }

  async readImageFile(image: string, path: string, signal?: AbortSignal): Promise<Uint8Array | null> {
    return this.api.downloadImageFile(image, path, signal)
  }

  async readImageTree(image: string, path: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array> | null> {
    return this.api.openImageArchive(image, path, signal)
  }

  async tagImage(uuid: string, tag: string, signal?: AbortSignal): Promise<void> {
    await this.api.tagImage(uuid, tag, signal)
  }

  async ensureFiles(files: readonly LocalFile[], signal?: AbortSignal, known?: ReadonlyMap<string, string>) {
    const ids = new Map<string, string>()
    const unique = new Map<string, LocalFile>()
    for (const file of files) {
      const remembered = known?.get(file.sha256)
      if (remembered) ids.set(file.sha256, remembered)
      else if (!unique.has(file.sha256)) unique.set(file.sha256, file)
    }
    let uploaded = 0
    let uploadedBytes = 0
    await mapLimit([...unique.values()], FILE_CONCURRENCY, async (file) => {
      const existing = await this.api.getFile(file.sha256, signal)
      if (existing) {
        ids.set(file.sha256, existing.uuid)
        return
      }
      const record = await this.api.uploadFile(() => fs.createReadStream(file.absPath, { highWaterMark: 1 << 20 }), file.size, signal)
      if (record.sha256 && record.sha256 !== file.sha256) {
        throw new Error(`${file.absPath} changed while it was being uploaded (sha256 ${file.sha256} → ${record.sha256})`)
      }
      ids.set(file.sha256, record.uuid)
      uploaded += 1
      uploadedBytes += file.size
    })
    return { ids, uploaded, uploadedBytes, probed: unique.size }
  }

  async storeBytes(bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
    const record = await this.api.uploadFile(bytes, bytes.byteLength, signal)
    return record.uuid
  }

  async run(request: SpawnRequest, sink: OutputSink, options: StartOptions): Promise<OperationOutcome> {
    return this.follow(
      (stopRetrying) =>
        this.api.spawn(
          {
            command: request.command,
            image: request.image,
            shell: request.shell,
            ...(request.args?.length ? { args: request.args } : {}),
            ...(request.env && Object.keys(request.env).length ? { env: request.env } : {}),
            ...(request.cwd ? { cwd: request.cwd } : {}),
            ...(request.timeoutSeconds ? { timeout: request.timeoutSeconds } : {}),
            disposable: request.disposable,
            ...(request.files && Object.keys(request.files).length ? { files: request.files } : {}),
            ...(request.uid !== undefined ? { uid: request.uid } : {}),
            ...(request.gid !== undefined ? { gid: request.gid } : {}),
            ...(request.outputLimitBytes !== undefined ? { truncate_output_at: request.outputLimitBytes } : {}),
            ...(request.network === false ? { networking: { enabled: false } } : {}),
          },
          stopRetrying,
        ),
      sink,
      options,
    )
  }

  async importImage(
    request: { reference: string; credentials?: { username: string; password: string }; tag?: string },
    sink: OutputSink,
    options: StartOptions,
  ): Promise<OperationOutcome> {
    return this.follow(
      (stopRetrying) =>
        this.api.importImage(
          {
            registry: { url: request.reference, ...(request.credentials ? { credentials: request.credentials } : {}) },
            ...(request.tag ? { tag: request.tag } : {}),
            timeout: 1800,
          },
          stopRetrying,
        ),
      sink,
      options,
      'image_import',
    )
  }

  async operationStatus(operationId: string, signal?: AbortSignal): Promise<OperationStatus | null> {
    try {
      return (await this.api.getOperation(operationId, signal)).status as OperationStatus
    } catch (error) {
      if (error instanceof HttpError && error.status === 404) return null
      throw error
    }
  }

  async isAlive(work: LiveWork, signal?: AbortSignal): Promise<boolean | null> {
    const status = await this.operationStatus(work.id, signal)
    return status === null ? null : !isTerminal(status)
  }

  async cancel(work: LiveWork, timeoutMs: number): Promise<string> {
    const result = await this.api.cancelOperation(work.id, { timeoutMs })
    switch (result) {
      case 'cancelled':
        return 'cancel requested'
      case 'not-cancellable':
        return 'it had already finished'
      case 'not-found':
        return 'the service does not know it'
    }
  }

  /**
   * `start` gets no abort signal on purpose: a create aborted in flight may still have reached the
   * service, leaving work nobody knows the id of. Letting it finish means the id is registered, and
   * a registry that is already cancelling cancels it at once. The signal only stops replays.
   *
   * Once the operation exists, any failure other than the caller's abort becomes an
   * OperationInterruptedError carrying its id and last known status, so the caller can report it and
   * cancel it at once (the abort path belongs to the job's cancellation, which cancels everything).
   */
  private async follow(
    start: (stopRetrying: AbortSignal | undefined) => Promise<string>,
    sink: OutputSink,
    options: StartOptions,
    kind: 'instance' | 'image_import' = 'instance',
  ): Promise<OperationOutcome> {
    const operationId = await start(options.signal)
    const created = performance.now()
    const work = { provider: 'contree', kind: 'operation', id: operationId } as const
    this.options.registry?.add({
      ...work,
      endpoint: this.options.apiUrl,
      ...(this.options.project ? { project: this.options.project } : {}),
      label: options.label,
    })
    let outcome: OperationOutcome
    try {
      outcome = await watchOperation(this.api, operationId, sink, {
        kind,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.deadlineMs !== undefined ? { deadline: created + options.deadlineMs } : {}),
        ...(this.options.debug ? { log: this.options.debug } : {}),
      })
    } catch (error) {
      if (options.signal?.aborted) throw error
      throw await this.lost(operationId, options, error)
    }
    this.options.registry?.finish(work)
    return outcome
  }

  /** Reads the status of an operation the action lost track of and explains what happened. */
  private async lost(operationId: string, options: StartOptions, cause: unknown): Promise<OperationInterruptedError> {
    let lastStatus: OperationStatus | null = null
    try {
      lastStatus = await this.operationStatus(operationId, AbortSignal.timeout(LOST_STATUS_TIMEOUT_MS))
    } catch (error) {
      this.options.debug?.(`status of ${operationId} after losing it: ${errorMessage(error)}`)
    }
    if (lastStatus !== null && isTerminal(lastStatus)) this.options.registry?.finish({ provider: 'contree', kind: 'operation', id: operationId })
    const seconds = options.deadlineMs === undefined ? 0 : Math.round(options.deadlineMs / 1000)
    let message: string
    if (cause instanceof FollowTimeoutError) {
      message =
        lastStatus === 'PENDING' || lastStatus === 'ASSIGNED'
          ? `${options.label}: operation ${operationId} never started within the deadline of ${seconds} s (still ${lastStatus} on the service)`
          : `${options.label}: operation ${operationId} did not finish within the deadline of ${seconds} s${lastStatus ? ` (still ${lastStatus})` : ''}`
    } else {
      message = `${options.label}: lost track of operation ${operationId}${lastStatus ? ` (${lastStatus} on the service)` : ''}: ${errorMessage(cause)}`
    }
    return new OperationInterruptedError({ operationId, label: options.label, lastStatus, message, cause })
  }
}
