// Paths inside a root filesystem resolved the way a process chrooted into it would see them: symlinks are
// followed relative to the root (an absolute target restarts at the root, `..` stops at it), so an image's
// `/bin -> usr/bin` works and nothing resolves to a host path outside the root.
import { chmod, chown, lstat, mkdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'

const MAX_SYMLINKS = 40

export class RootPathError extends Error {
  readonly code: 'ENOENT' | 'ENOTDIR' | 'ELOOP'
  constructor(code: 'ENOENT' | 'ENOTDIR' | 'ELOOP', path: string) {
    super(`${path}: ${code === 'ENOENT' ? 'no such file or directory' : code === 'ENOTDIR' ? 'not a directory' : 'too many levels of symbolic links'}`)
    this.code = code
  }
}

export interface ResolveOptions {
  /** Follow a symlink in the last component (stat/read/write do; delete and lstat do not). */
  followLast: boolean
  /** Create missing directories on the way, the last component included when `createLast` (mkdir -p). */
  createDirs?: boolean
  createLast?: boolean
  /** Mode of directories created (default 0o755, whatever the umask). */
  dirMode?: number
  /** Owner of directories created (default: whoever runs this, root where owners are real). */
  owner?: { uid: number; gid: number }
}

export interface Resolved {
  /** Host path of the entry (it may not exist when it is the last component). */
  hostPath: string
  /** Path inside the root after following links, always absolute. */
  rootPath: string
  exists: boolean
}

async function lstatOrNull(path: string) {
  try {
    return await lstat(path)
  } catch {
    return null
  }
}

async function makeDirectory(hostPath: string, opts: ResolveOptions): Promise<void> {
  await mkdir(hostPath)
  // chown first: it would clear setgid bits a mode asks for.
  if (opts.owner) await chown(hostPath, opts.owner.uid, opts.owner.gid)
  await chmod(hostPath, opts.dirMode ?? 0o755)
}

export async function resolveInRoot(root: string, path: string, opts: ResolveOptions): Promise<Resolved> {
  const pending = path.split('/').filter((part) => part !== '' && part !== '.')
  const done: string[] = []
  let hops = 0
  while (pending.length > 0) {
    const part = pending.shift() as string
    if (part === '..') {
      done.pop()
      continue
    }
    const isLast = pending.length === 0
    const hostPath = join(root, ...done, part)
    const stat = await lstatOrNull(hostPath)
    if (!stat) {
      if (!isLast && !opts.createDirs) throw new RootPathError('ENOENT', '/' + [...done, part].join('/'))
      if (!isLast || opts.createLast) await makeDirectory(hostPath, opts)
      if (isLast && !opts.createLast) return { hostPath, rootPath: '/' + [...done, part].join('/'), exists: false }
      done.push(part)
      continue
    }
    if (stat.isSymbolicLink() && (!isLast || opts.followLast)) {
      hops += 1
      if (hops > MAX_SYMLINKS) throw new RootPathError('ELOOP', path)
      const target = await readlink(hostPath)
      if (target.startsWith('/')) done.length = 0
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'))
      continue
    }
    if (!isLast && !stat.isDirectory()) throw new RootPathError('ENOTDIR', '/' + [...done, part].join('/'))
    done.push(part)
  }
  return { hostPath: join(root, ...done), rootPath: '/' + done.join('/'), exists: (await lstatOrNull(join(root, ...done))) !== null }
}
