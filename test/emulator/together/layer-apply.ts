// (Moved here from the ConTree emulator, which now unpacks layers with numeric owners through its
// root-fs helper: contree/rootfs/ops.ts.)
// Applies one image layer (a tar, gzip'ed or not) onto a root tree, honouring OCI whiteouts:
// `.wh.NAME` deletes NAME from lower layers, `.wh..wh..opq` empties its directory.
import { execFile } from 'node:child_process'
import { readdir, rm } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const OPAQUE = '.wh..wh..opq'

function insideRoot(root: string, relative: string): string | null {
  const normal = posix.normalize('/' + relative)
  if (normal === '/' || normal.includes('/../')) return null
  return join(root, normal)
}

export async function applyLayer(root: string, tarFile: string): Promise<void> {
  const { stdout } = await run('tar', ['-tf', tarFile], { maxBuffer: 256 * 1024 * 1024 })
  for (const line of stdout.split('\n')) {
    const name = line.replace(/^\.?\/+/, '').replace(/\/$/, '')
    const base = posix.basename(name)
    if (!base.startsWith('.wh.')) continue
    const dir = posix.dirname(name)
    if (base === OPAQUE) {
      const target = insideRoot(root, dir === '.' ? '' : dir) ?? root
      const entries = await readdir(target).catch(() => [] as string[])
      for (const entry of entries) await rm(join(target, entry), { recursive: true, force: true })
      continue
    }
    const target = insideRoot(root, posix.join(dir, base.slice(4)))
    if (target) await rm(target, { recursive: true, force: true })
  }
  // GNU tar detects gzip from the file itself; exclusion patterns match any path component.
  await run('tar', ['-xf', tarFile, '-C', root, '--exclude=.wh.*'], { maxBuffer: 16 * 1024 * 1024 })
}
