/**
 * Turns the `upload` input into file placements: every file under the listed workspace paths, placed
 * under `upload-to` at its workspace-relative path, hashed so the service is asked only for what it
 * lacks. `.git` directories are skipped; nothing outside the workspace is ever read.
 */
import * as path from 'node:path'
import { walkContext } from './build/context.ts'
import { createIgnoreMatcher } from './build/dockerignore.ts'
import type { UploadInputs } from './inputs.ts'
import type { FilePlacement } from './providers/types.ts'

const UPLOAD_IGNORES = ['**/.git', '.git']

export async function collectUploads(upload: UploadInputs): Promise<FilePlacement> {
  const files = await walkContext(upload.root, createIgnoreMatcher(UPLOAD_IGNORES))
  const wanted = upload.paths.map((p) => path.relative(upload.root, p).split(path.sep).join('/'))
  const placement: FilePlacement = {}
  for (const file of files) {
    if (!wanted.some((prefix) => prefix === '' || file.relPath === prefix || file.relPath.startsWith(`${prefix}/`))) continue
    placement[path.posix.join(upload.to, file.relPath)] = {
      file,
      mode: (file.mode & 0o777).toString(8).padStart(4, '0'),
      uid: 0,
      gid: 0,
    }
  }
  return placement
}
