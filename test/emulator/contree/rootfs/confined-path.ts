// Path resolution inside an image tree as a process chrooted into it would see it: symlinks are
// followed relative to the image root (an absolute target starts again at the root, `..` stops at
// it), so nothing the image contains can lead the emulator to a host path.
import { chmod, lstat, mkdir, readlink } from 'node:fs/promises'
import { join, posix } from 'node:path'

/** Linux's limit on symlinks followed in one lookup. */
const MAX_SYMLINKS = 40

export type ConfinedErrorCode = 'ENOENT' | 'ENOTDIR' | 'ELOOP'

export class ConfinedPathError extends Error {
  readonly code: ConfinedErrorCode
  /** The image path at which resolution stopped. */
  readonly imagePath: string
  constructor(code: ConfinedErrorCode, imagePath: string) {
    const what = { ENOENT: 'no such file or directory', ENOTDIR: 'not a directory', ELOOP: 'too many levels of symbolic links' }[code]
    super(`${imagePath}: ${what}`)
    this.code = code
    this.imagePath = imagePath
  }
}

export interface ResolvedPath {
  /** Absolute path inside the image, every followed symlink resolved. */
  imagePath: string
  /** The same entry on the host. */
  hostPath: string
}

export interface ResolveOptions {
  /** Follow a symlink in the last component too (default true, like stat); false is like lstat. */
  followFinal?: boolean
  /** Create missing directories (root:root 0755) instead of failing; the last component becomes a directory too. */
  createDirectories?: boolean
}

export function hostPathOf(root: string, imagePath: string): string {
  return imagePath === '/' ? root : join(root, imagePath)
}

function components(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.')
}

export async function resolveInRoot(root: string, path: string, options: ResolveOptions = {}): Promise<ResolvedPath> {
  const followFinal = options.followFinal ?? true
  const pending = components(path)
  let current = '/'
  let links = 0
  while (pending.length > 0) {
    const part = pending.shift() as string
    if (part === '..') {
      current = posix.dirname(current)
      continue
    }
    const next = posix.join(current, part)
    const host = hostPathOf(root, next)
    const isLast = pending.length === 0
    let stats
    try {
      stats = await lstat(host)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      if (!options.createDirectories) throw new ConfinedPathError('ENOENT', next)
      await mkdir(host)
      await chmod(host, 0o755)
      current = next
      continue
    }
    if (stats.isSymbolicLink() && (!isLast || followFinal || options.createDirectories)) {
      if (++links > MAX_SYMLINKS) throw new ConfinedPathError('ELOOP', next)
      const target = await readlink(host)
      if (target.startsWith('/')) current = '/'
      pending.unshift(...components(target))
      continue
    }
    if ((!isLast || options.createDirectories) && !stats.isDirectory()) throw new ConfinedPathError('ENOTDIR', next)
    current = next
  }
  return { imagePath: current, hostPath: hostPathOf(root, current) }
}

/** True when no component of `path` below the root is a symlink (the literal path is the real one). */
export async function isLiteralPath(root: string, path: string): Promise<boolean> {
  let current = '/'
  for (const part of components(path)) {
    if (part === '..') return false
    current = posix.join(current, part)
    try {
      if ((await lstat(hostPathOf(root, current))).isSymbolicLink()) return false
    } catch {
      // Missing from here on: nothing below can be a symlink yet.
      return true
    }
  }
  return true
}
