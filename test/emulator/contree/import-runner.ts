// The life of one image_import operation: pull the image for real from an OCI registry, unpack its
// layers (owners and modes as the tars say, through the root-fs helper) into a new image tree, tag
// it. Progress goes to the event log as stdout lines.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { ImageRuntimeConfig } from '../oci-image.ts'
import type { ImageStore } from './image-store.ts'
import { appendInit, completeOperation } from './instance-runner.ts'
import type { Operation } from './operations.ts'
import { parseRegistryUrl, RegistryClient, type Credentials } from './registry-client.ts'
import type { RootFs } from './rootfs/client.ts'

export interface ImportRequest {
  url: string
  credentials: Credentials | undefined
  tag: string | null
  timeout: number
}

export interface ImportContext {
  images: ImageStore
  dataDir: string
  sandbox: { fs: RootFs }
  stateDelayMs: number
  legacyCompletionFields: boolean
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export async function runImport(ctx: ImportContext, op: Operation, request: ImportRequest): Promise<void> {
  const fs = ctx.sandbox.fs
  const abort = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    abort.abort(new Error('timeout'))
  }, request.timeout * 1000)
  op.cancel = () => abort.abort(new Error('cancelled'))
  const work = join(ctx.dataDir, 'tmp', op.uuid)
  const say = (line: string) => op.log.appendOutput(1, 'stdout', Buffer.from(line + '\n'))
  let outcome: { status: 'SUCCESS' | 'FAILED' | 'CANCELLED'; error: string | null } = { status: 'FAILED', error: 'emulator: import did not finish' }
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
      await mkdir(work, { recursive: true })
      await fs.call('makeDirectory', { path: staging, mode: 0o755 })
      for (const [index, layer] of manifest.layers.entries()) {
        say(`pulling ${layer.digest} (${layer.size ?? '?'} bytes)`)
        const blob = join(work, `layer-${index}`)
        await client.downloadBlob(layer.digest, blob)
        await fs.call('applyLayer', { root: staging, tarFile: blob })
      }
      await fs.call('moveTree', { from: staging, to: dir })
      image = ctx.images.register(uuid, dir, op.uuid, manifest.digest, manifest.config as ImageRuntimeConfig | null)
      say(`unpacked into image ${uuid}`)
    }
    // Like PATCH …/tag: a tag another image holds is not taken from it (the import fails instead).
    if (request.tag) {
      ctx.images.setTag(image.uuid, request.tag)
      op.resultTag = request.tag
    }
    op.resultImageUuid = image.uuid
    op.imageSize = await fs.call('treeSize', { path: image.dir })
    outcome = { status: 'SUCCESS', error: null }
  } catch (error) {
    outcome = op.cancelRequested
      ? { status: 'CANCELLED', error: null }
      : { status: 'FAILED', error: timedOut ? 'timeout' : `import of ${request.url} failed: ${(error as Error).message}` }
  } finally {
    clearTimeout(timer)
    op.cancel = null
    await fs.call('removeTree', { path: work }).catch(() => undefined)
  }
  // The record turns terminal in the same turn as the completion event is logged: a client that
  // sees the terminal status and then reads the retained log finds the completion in it.
  op.status = outcome.status
  op.error = outcome.error
  completeOperation(ctx, op)
}
