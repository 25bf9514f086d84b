// The life of one image_import operation: pull the image for real from an OCI registry, unpack its
// layers into a new image tree, tag it. Progress goes to the event log as stdout lines.
import { mkdir, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { ImageStore } from './image-store.ts'
import { appendInit, completeOperation, imageSizeBytes } from './instance-runner.ts'
import { applyLayer } from './layer-apply.ts'
import type { Operation } from './operations.ts'
import { parseRegistryUrl, RegistryClient, type Credentials } from './registry-client.ts'

export interface ImportRequest {
  url: string
  credentials: Credentials | undefined
  tag: string | null
  timeout: number
}

export interface ImportContext {
  images: ImageStore
  dataDir: string
  stateDelayMs: number
  legacyCompletionFields: boolean
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export async function runImport(ctx: ImportContext, op: Operation, request: ImportRequest): Promise<void> {
  const abort = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    abort.abort(new Error('timeout'))
  }, request.timeout * 1000)
  op.cancel = () => abort.abort(new Error('cancelled'))
  const work = join(ctx.dataDir, 'tmp', op.uuid)
  const say = (line: string) => op.log.appendOutput(1, 'stdout', Buffer.from(line + '\n'))
  try {
    await sleep(ctx.stateDelayMs)
    if (!op.cancelRequested) op.status = 'ASSIGNED'
    await sleep(ctx.stateDelayMs)
    if (op.cancelRequested) throw new Error('cancelled')
    op.status = 'EXECUTING'
    appendInit(op)

    const ref = parseRegistryUrl(request.url)
    const client = new RegistryClient(ref, request.credentials, abort.signal)
    say(`resolving ${ref.host}/${ref.name}:${ref.reference}`)
    const manifest = await client.pullManifest()
    say(`manifest ${manifest.digest} (${manifest.layers.length} layers)`)

    let image = ctx.images.findByDigest(manifest.digest)
    if (image) {
      say(`image ${manifest.digest} already present, reusing ${image.uuid}`)
    } else {
      const { uuid, dir } = ctx.images.allocate()
      const staging = join(work, 'rootfs')
      await mkdir(staging, { recursive: true, mode: 0o755 })
      for (const [index, layer] of manifest.layers.entries()) {
        say(`pulling ${layer.digest} (${layer.size ?? '?'} bytes)`)
        const blob = join(work, `layer-${index}`)
        await client.downloadBlob(layer.digest, blob)
        await applyLayer(staging, blob)
        await rm(blob, { force: true })
      }
      await mkdir(dirname(dir), { recursive: true })
      await rename(staging, dir)
      image = ctx.images.register(uuid, dir, op.uuid, manifest.digest)
      say(`unpacked into image ${uuid}`)
    }
    if (request.tag) {
      ctx.images.setTag(image.uuid, request.tag)
      op.resultTag = request.tag
    }
    op.resultImageUuid = image.uuid
    op.imageSize = await imageSizeBytes(image.dir)
    op.status = 'SUCCESS'
  } catch (error) {
    if (op.cancelRequested) {
      op.status = 'CANCELLED'
    } else {
      op.status = 'FAILED'
      op.error = timedOut ? 'timeout' : `import of ${request.url} failed: ${(error as Error).message}`
    }
  } finally {
    clearTimeout(timer)
    op.cancel = null
    await rm(work, { recursive: true, force: true }).catch(() => undefined)
  }
  completeOperation(ctx, op)
}
