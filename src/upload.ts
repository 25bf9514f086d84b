/**
 * Turns the `upload` input into file placements: every file under the listed workspace paths, placed
 * under `upload-to` at its workspace-relative path, hashed so the service is asked only for what it
 * lacks. `.git` directories are skipped; nothing outside the workspace is ever read (a symlink that
 * points out is an error, as in a build context).
 */
import * as path from 'node:path'
import { resolveSources } from './dockerfile/context.ts'
import { formatMode } from './providers/contree/build/copy-plan.ts'
import { createIgnoreMatcher } from './dockerfile/dockerignore.ts'
import { InputError, errorMessage } from './errors.ts'
import type { UploadInputs } from './inputs.ts'
import type { FilePlacement } from './providers/types.ts'

const UPLOAD_IGNORES = ['**/.git']

export async function collectUploads(upload: UploadInputs): Promise<FilePlacement> {
  const matcher = createIgnoreMatcher(UPLOAD_IGNORES)
  const sources = upload.paths.map((p) => path.relative(upload.root, p).split(path.sep).join('/') || '.')
  let files
  try {
    files = await resolveSources(upload.root, sources, matcher)
  } catch (error) {
    throw new InputError('upload', errorMessage(error))
  }
  const placement: FilePlacement = {}
  for (const file of files) {
    placement[path.posix.join(upload.to, file.relPath)] = {
      file,
      mode: formatMode(file.mode),
      uid: 0,
      gid: 0,
    }
  }
  return placement
}
