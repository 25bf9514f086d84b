/**
 * Builds the blobs of a small single-platform OCI image in memory: gzip'ed tar layers, the image
 * config (whose diff_ids are digests of the UNCOMPRESSED layers) and the manifest. Deterministic,
 * so the same files always give the same manifest digest.
 */
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { buildTar, type TarFiles } from './tar-writer.ts'

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'

export interface Blob {
  digest: string
  mediaType: string
  bytes: Uint8Array
}

export interface OciImage {
  layers: Blob[]
  config: Blob
  manifest: Blob
  /** The manifest as an object, for assertions. */
  manifestObject: Record<string, unknown>
}

export interface OciImageOptions {
  /** Further layers on top of the first, in order. */
  extraLayers?: TarFiles[]
  /** Merged into the image config's `config` (Env, Cmd, WorkingDir, …). */
  config?: Record<string, unknown>
  architecture?: string
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

export function buildOciImage(files: TarFiles, opts: OciImageOptions = {}): OciImage {
  const tars = [files, ...(opts.extraLayers ?? [])].map((layerFiles) => buildTar(layerFiles))
  // zlib's gzip header carries mtime 0 and no file name, so equal tars compress to equal bytes.
  const layers: Blob[] = tars.map((tar) => {
    const bytes = new Uint8Array(gzipSync(tar, { level: 6 }))
    return { digest: sha256Digest(bytes), mediaType: OCI_LAYER_GZIP, bytes }
  })
  const configObject = {
    architecture: opts.architecture ?? 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...opts.config },
    rootfs: { type: 'layers', diff_ids: tars.map((tar) => sha256Digest(tar)) },
    history: tars.map(() => ({ created_by: 'test/emulator/oci-image.ts' })),
  }
  const configBytes = new TextEncoder().encode(JSON.stringify(configObject))
  const config: Blob = { digest: sha256Digest(configBytes), mediaType: OCI_CONFIG, bytes: configBytes }
  const manifestObject = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: descriptor(config),
    layers: layers.map(descriptor),
  }
  const manifestBytes = new TextEncoder().encode(JSON.stringify(manifestObject))
  return {
    layers,
    config,
    manifest: { digest: sha256Digest(manifestBytes), mediaType: OCI_MANIFEST, bytes: manifestBytes },
    manifestObject,
  }
}

function descriptor(blob: Blob): { mediaType: string; digest: string; size: number } {
  return { mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length }
}
