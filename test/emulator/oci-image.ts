/**
 * Builds the blobs of small OCI images in memory: gzip'ed tar layers, the image config (whose
 * diff_ids are digests of the UNCOMPRESSED layers) and the manifest, and image indexes that list one
 * manifest per platform. Deterministic, so the same files always give the same manifest digest.
 */
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { buildTar, type TarFiles } from './tar-writer.ts'

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'

export const STANDARD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface Blob {
  digest: string
  mediaType: string
  bytes: Uint8Array
}

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

/** The runtime part of an image config (`config` in the OCI image config), as Docker writes it. */
export interface ImageRuntimeConfig {
  Env?: string[]
  Cmd?: string[]
  Entrypoint?: string[]
  WorkingDir?: string
  User?: string
  Labels?: Record<string, string>
  [key: string]: unknown
}

export interface OciImage {
  layers: Blob[]
  config: Blob
  manifest: Blob
  /** The manifest as an object, for assertions. */
  manifestObject: Record<string, unknown>
  platform: Platform
}

/** A layer: files for tar-writer, or a tar already built (e.g. a cached test image tree). */
export type LayerSource = TarFiles | Uint8Array

export interface OciImageOptions {
  /** Further layers on top of the first, in order. */
  extraLayers?: LayerSource[]
  /** Merged over the default `config` (Env with the standard PATH): Env, Cmd, WorkingDir, User, … */
  config?: ImageRuntimeConfig
  /** Shorthand for `platform.architecture` (default amd64). */
  architecture?: string
  platform?: Platform
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

// The same tar (a test image's tree) is gzip'ed once per process: compressing a busybox tree is the
// slowest part of building an image.
const gzipped = new Map<string, Uint8Array>()

function layerBlob(tar: Uint8Array): { blob: Blob; diffId: string } {
  const diffId = sha256Digest(tar)
  let bytes = gzipped.get(diffId)
  if (!bytes) {
    // zlib's gzip header carries mtime 0 and no file name, so equal tars compress to equal bytes.
    bytes = new Uint8Array(gzipSync(tar, { level: 6 }))
    gzipped.set(diffId, bytes)
  }
  return { blob: { digest: sha256Digest(bytes), mediaType: OCI_LAYER_GZIP, bytes }, diffId }
}

export function buildOciImage(files: LayerSource, opts: OciImageOptions = {}): OciImage {
  const tars = [files, ...(opts.extraLayers ?? [])].map((layer) => (layer instanceof Uint8Array ? layer : buildTar(layer)))
  const built = tars.map(layerBlob)
  const platform: Platform = opts.platform ?? { os: 'linux', architecture: opts.architecture ?? 'amd64' }
  const configObject = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: [`PATH=${STANDARD_PATH}`], ...opts.config },
    rootfs: { type: 'layers', diff_ids: built.map((layer) => layer.diffId) },
    history: tars.map(() => ({ created_by: 'test/emulator/oci-image.ts' })),
  }
  const configBytes = new TextEncoder().encode(JSON.stringify(configObject))
  const config: Blob = { digest: sha256Digest(configBytes), mediaType: OCI_CONFIG, bytes: configBytes }
  const layers = built.map((layer) => layer.blob)
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
    platform,
  }
}

/** An OCI image index listing each image's manifest under its platform, in the order given. */
export function buildOciIndex(images: readonly OciImage[]): { index: Blob; indexObject: Record<string, unknown> } {
  const indexObject = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: images.map((image) => ({ ...descriptor(image.manifest), platform: image.platform })),
  }
  const bytes = new TextEncoder().encode(JSON.stringify(indexObject))
  return { index: { digest: sha256Digest(bytes), mediaType: OCI_INDEX, bytes }, indexObject }
}

function descriptor(blob: Blob): { mediaType: string; digest: string; size: number } {
  return { mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length }
}
