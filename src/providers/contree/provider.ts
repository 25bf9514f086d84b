/**
 * ConTree behind the action's Provider interface: maps the action's requests onto the v1 API and
 * registers every operation with the remote-work registry the moment its id exists.
 */
import * as fs from 'node:fs'
import type { RemoteWorkRegistry } from '../../cancel.ts'
import { HttpError } from '../../http/errors.ts'
import type { LocalFile, OperationOutcome, OperationStatus, OutputSink, Provider, RunRequest, StartOptions } from '../types.ts'
import { ContreeApi } from './api.ts'
import { watchOperation } from './watch.ts'
import { mapLimit } from '../../concurrency.ts'

export interface ContreeProviderOptions {
  apiUrl: string
  token: string
  project?: string
  userAgent: string
  /** Where started operations are recorded; the post step, which starts none, passes none. */
  registry?: RemoteWorkRegistry
  /** Injected in tests. */
  api?: ContreeApi
}

/** Upload/probe concurrency: enough to hide latency, few enough not to trip rate limits. */
const FILE_CONCURRENCY = 8

export class ContreeProvider implements Provider {
  readonly name = 'contree'
  readonly api: ContreeApi
  private readonly options: ContreeProviderOptions

  constructor(options: ContreeProviderOptions) {
    this.options = options
    this.api =
      options.api ??
      new ContreeApi({
        baseUrl: options.apiUrl,
        token: options.token,
        ...(options.project ? { project: options.project } : {}),
        userAgent: options.userAgent,
      })
  }

  async findImage(ref: { uuid: string } | { tag: string }, signal?: AbortSignal): Promise<string | null> {
    if ('uuid' in ref) return (await this.imageExists(ref.uuid, signal)) ? ref.uuid : null
    return this.api.findImageByTag(ref.tag, signal)
  }

  async imageExists(uuid: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.api.getImage(uuid, signal)) !== null
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

  async run(request: RunRequest, sink: OutputSink, options: StartOptions): Promise<OperationOutcome> {
    return this.follow(
      () =>
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
          },
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
      () =>
        this.api.importImage(
          {
            registry: { url: request.reference, ...(request.credentials ? { credentials: request.credentials } : {}) },
            ...(request.tag ? { tag: request.tag } : {}),
            timeout: 1800,
          },
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

  async cancel(operationId: string, timeoutMs: number): Promise<string> {
    const result = await this.api.cancelOperation(operationId, { timeoutMs })
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
   * a registry that is already cancelling cancels it at once.
   */
  private async follow(
    start: () => Promise<string>,
    sink: OutputSink,
    options: StartOptions,
    kind: 'instance' | 'image_import' = 'instance',
  ): Promise<OperationOutcome> {
    const operationId = await start()
    this.options.registry?.add({
      provider: 'contree',
      apiUrl: this.options.apiUrl,
      ...(this.options.project ? { project: this.options.project } : {}),
      operationId,
      label: options.label,
    })
    const outcome = await watchOperation(this.api, operationId, sink, { kind, ...(options.signal ? { signal: options.signal } : {}) })
    this.options.registry?.finish(operationId)
    return outcome
  }
}
