// What the root-fs helper does, as root of the sandbox's user namespace (or as real root): every
// filesystem operation on image and instance trees that must keep or set real owners. Paths given
// inside an image are resolved with confined-path.ts, so image symlinks never reach host paths.
import { execFile } from 'node:child_process'
import { chmod, chown, copyFile, lstat, mkdir, readdir, readFile, readlink, rename, rm, rmdir, stat, unlink } from 'node:fs/promises'
import { dirname, join, posix } from 'node:path'
import { promisify } from 'node:util'
import { ConfinedPathError, isLiteralPath, resolveInRoot } from './confined-path.ts'

const run = promisify(execFile)
const OPAQUE_WHITEOUT = '.wh..wh..opq'

export interface FilePlacement {
  /** Host path of the uploaded bytes. */
  source: string
  /** Absolute path inside the image. */
  path: string
  mode: number
  uid: number
  gid: number
}

export type DirectoryState = 'directory' | 'missing' | 'not-a-directory'
export type ExecutableLookup = { found: string } | { problem: string }
export type FileRead = { kind: 'file'; base64: string } | { kind: 'directory' } | { kind: 'missing' } | { kind: 'special' }

export interface ListedEntry {
  name: string
  uid: number
  gid: number
  owner: string | null
  group: string | null
  mode: number
  size: number
  mtime: number
  nlink: number
  isDir: boolean
  isRegular: boolean
  isSymlink: boolean
  isSocket: boolean
  isFifo: boolean
  symlinkTo: string
}

export type DirectoryListing = { kind: 'listing'; path: string; entries: ListedEntry[] } | { kind: 'missing' } | { kind: 'not-a-directory' }

export interface MountPoints {
  /** Names under the root that are real directories now, so something can be mounted on them. */
  usable: string[]
  /** The ones made for this run (removed again afterwards). */
  created: string[]
}

function notFound(error: unknown): boolean {
  return error instanceof ConfinedPathError && (error.code === 'ENOENT' || error.code === 'ENOTDIR')
}

/** The helper's operations; every one takes one JSON-able argument object and returns JSON-able data. */
export const rootFsOps = {
  async ping(): Promise<{ uid: number; gid: number }> {
    return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 }
  },

  async makeDirectory({ path, mode }: { path: string; mode: number }): Promise<void> {
    await mkdir(path, { recursive: true })
    await chmod(path, mode)
  },

  /** A copy with owners, modes and links, never hardlinks: the source image stays immutable. */
  async copyTree({ from, to }: { from: string; to: string }): Promise<void> {
    await mkdir(dirname(to), { recursive: true })
    await run('cp', ['-a', '--reflink=auto', '--', from, to])
  },

  async moveTree({ from, to }: { from: string; to: string }): Promise<void> {
    await mkdir(dirname(to), { recursive: true })
    await rename(from, to)
  },

  async removeTree({ path }: { path: string }): Promise<void> {
    await rm(path, { recursive: true, force: true })
  },

  /** Apparent size of everything in the tree (like `du -sb`). */
  async treeSize({ path }: { path: string }): Promise<number> {
    let total = 0
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = join(dir, entry.name)
        total += (await lstat(full)).size
        if (entry.isDirectory()) await walk(full)
      }
    }
    await walk(path)
    return total
  },

  /**
   * Applies one image layer (tar, gzip'ed or not) onto `root`, honouring OCI whiteouts: `.wh.NAME`
   * deletes NAME from lower layers, `.wh..wh..opq` empties its directory. Owners are the numeric ids
   * of the tar, never names looked up on the host. `keepDirectories` leaves directories that exist
   * as they are (a seeded file layer lists its parents as root 0755; they must not override the tree).
   */
  async applyLayer({ root, tarFile, keepDirectories = false }: { root: string; tarFile: string; keepDirectories?: boolean }): Promise<void> {
    await mkdir(root, { recursive: true })
    const { stdout } = await run('tar', ['-tf', tarFile], { maxBuffer: 256 * 1024 * 1024 })
    const names = stdout.split('\n').map((line) => line.replace(/^\.?\/+/, '').replace(/\/$/, '')).filter((name) => name !== '' && name !== '.')
    // tar follows symlinked directories already on disk: a member below one could land outside the
    // root (as real root, on the host). Such layers are refused rather than extracted.
    const parents = new Set(names.map((name) => posix.dirname(name)).filter((dir) => dir !== '.'))
    for (const parent of parents) {
      if (!(await isLiteralPath(root, parent))) throw new Error(`layer writes below /${parent}, which is a symlink in the image (not supported by the emulator)`)
    }
    for (const name of names) {
      const base = posix.basename(name)
      if (!base.startsWith('.wh.')) continue
      const dir = posix.dirname(name)
      let parent
      try {
        parent = await resolveInRoot(root, dir === '.' ? '/' : `/${dir}`)
      } catch (error) {
        if (notFound(error)) continue
        throw error
      }
      if (base === OPAQUE_WHITEOUT) {
        const entries = await readdir(parent.hostPath).catch(() => [] as string[])
        for (const entry of entries) await rm(join(parent.hostPath, entry), { recursive: true, force: true })
      } else {
        await rm(join(parent.hostPath, base.slice(4)), { recursive: true, force: true })
      }
    }
    // GNU tar detects gzip itself; as root it keeps owners and modes; --exclude matches any component.
    const directories = keepDirectories ? ['--no-overwrite-dir'] : []
    await run('tar', ['-xf', tarFile, '-C', root, '--numeric-owner', '--same-owner', '--preserve-permissions', ...directories, '--exclude=.wh.*'], {
      maxBuffer: 16 * 1024 * 1024,
    })
  },

  /**
   * Writes uploaded files into an instance root. Missing parent directories are created
   * root:root 0755 (whoever needs another owner places or creates the directory itself); an
   * existing file or symlink at the path is replaced, a directory there is an error.
   */
  async placeFiles({ root, files }: { root: string; files: FilePlacement[] }): Promise<void> {
    for (const file of files) {
      const path = posix.normalize(file.path)
      const parent = await resolveInRoot(root, posix.dirname(path), { createDirectories: true })
      const target = join(parent.hostPath, posix.basename(path))
      const existing = await lstat(target).catch(() => null)
      if (existing?.isDirectory()) throw new Error(`cannot place ${file.path}: a directory is in the way`)
      if (existing) await unlink(target)
      await copyFile(file.source, target)
      // chown first: it clears setuid/setgid bits a mode may ask for.
      await chown(target, file.uid, file.gid)
      await chmod(target, file.mode)
    }
  },

  async directoryState({ root, path }: { root: string; path: string }): Promise<DirectoryState> {
    try {
      const resolved = await resolveInRoot(root, path)
      return (await stat(resolved.hostPath)).isDirectory() ? 'directory' : 'not-a-directory'
    } catch (error) {
      if (error instanceof ConfinedPathError) return error.code === 'ENOTDIR' ? 'not-a-directory' : 'missing'
      throw error
    }
  },

  /** What execvp would run for `command` with this PATH and cwd, looked up inside the image only. */
  async findExecutable({ root, cwd, command, searchPath }: { root: string; cwd: string; command: string; searchPath: string }): Promise<ExecutableLookup> {
    const candidates = command.includes('/')
      ? [posix.resolve(cwd, command)]
      : searchPath.split(':').map((dir) => posix.join(posix.resolve(cwd, dir || '.'), command))
    let lastProblem = `${command}: not found in PATH ${searchPath}`
    for (const candidate of candidates) {
      try {
        const resolved = await resolveInRoot(root, candidate)
        const stats = await stat(resolved.hostPath)
        if (stats.isDirectory()) lastProblem = `${candidate}: is a directory`
        else if (!stats.isFile() || (stats.mode & 0o111) === 0) lastProblem = `${candidate}: permission denied`
        else return { found: candidate }
      } catch (error) {
        if (!(error instanceof ConfinedPathError)) throw error
        if (command.includes('/')) lastProblem = `${candidate}: ${error.message.slice(error.message.indexOf(': ') + 2)}`
      }
    }
    return { problem: lastProblem }
  },

  /** Makes sure `names` (e.g. dev, proc) are directories at the root, creating the missing ones. */
  async prepareMountPoints({ root, names }: { root: string; names: string[] }): Promise<MountPoints> {
    const points: MountPoints = { usable: [], created: [] }
    for (const name of names) {
      const path = join(root, name)
      const existing = await lstat(path).catch(() => null)
      if (!existing) {
        await mkdir(path)
        await chmod(path, 0o755)
        points.created.push(name)
        points.usable.push(name)
      } else if (existing.isDirectory()) {
        points.usable.push(name)
      }
    }
    return points
  },

  async removeMountPoints({ root, names }: { root: string; names: string[] }): Promise<void> {
    for (const name of names) {
      // Still in use or written to (the command replaced the mount point): keep what is there.
      await rmdir(join(root, name)).catch(() => undefined)
    }
  },

  async readImageFile({ root, path }: { root: string; path: string }): Promise<FileRead> {
    let resolved
    try {
      resolved = await resolveInRoot(root, path)
    } catch (error) {
      if (error instanceof ConfinedPathError) return { kind: 'missing' }
      throw error
    }
    const stats = await stat(resolved.hostPath).catch(() => null)
    if (!stats) return { kind: 'missing' }
    if (stats.isDirectory()) return { kind: 'directory' }
    if (!stats.isFile()) return { kind: 'special' }
    return { kind: 'file', base64: (await readFile(resolved.hostPath)).toString('base64') }
  },

  async listImageDirectory({ root, path }: { root: string; path: string }): Promise<DirectoryListing> {
    let resolved
    try {
      resolved = await resolveInRoot(root, path)
    } catch (error) {
      if (error instanceof ConfinedPathError) return error.code === 'ENOTDIR' ? { kind: 'not-a-directory' } : { kind: 'missing' }
      throw error
    }
    const stats = await stat(resolved.hostPath).catch(() => null)
    if (!stats) return { kind: 'missing' }
    if (!stats.isDirectory()) return { kind: 'not-a-directory' }
    const users = await accountNames(root, '/etc/passwd')
    const groups = await accountNames(root, '/etc/group')
    const entries: ListedEntry[] = []
    for (const name of (await readdir(resolved.hostPath)).sort()) {
      const full = join(resolved.hostPath, name)
      const info = await lstat(full)
      entries.push({
        name,
        uid: info.uid,
        gid: info.gid,
        owner: users.get(info.uid) ?? null,
        group: groups.get(info.gid) ?? null,
        mode: info.mode,
        size: info.size,
        mtime: Math.floor(info.mtimeMs / 1000),
        nlink: info.nlink,
        isDir: info.isDirectory(),
        isRegular: info.isFile(),
        isSymlink: info.isSymbolicLink(),
        isSocket: info.isSocket(),
        isFifo: info.isFIFO(),
        symlinkTo: info.isSymbolicLink() ? await readlink(full) : '',
      })
    }
    return { kind: 'listing', path: resolved.imagePath, entries }
  },

  /**
   * Writes a PAX tar of `path` (recursively, symlinks as symlinks, numeric owners) to `outFile`, with
   * member names relative to the image root (`etc/hosts`). The path is resolved inside the image first.
   */
  async archiveImagePath({ root, path, outFile }: { root: string; path: string; outFile: string }): Promise<'written' | 'missing'> {
    let resolved
    try {
      resolved = await resolveInRoot(root, path)
    } catch (error) {
      if (error instanceof ConfinedPathError) return 'missing'
      throw error
    }
    const members = resolved.imagePath === '/' ? (await readdir(root)).sort() : [resolved.imagePath.slice(1)]
    await mkdir(dirname(outFile), { recursive: true })
    await run('tar', [
      '--create',
      `--file=${outFile}`,
      '--format=pax',
      '--pax-option=delete=atime,delete=ctime',
      '--numeric-owner',
      '--sort=name',
      `--directory=${root}`,
      '--',
      ...members,
    ])
    return 'written'
  },
}

export type RootFsOps = typeof rootFsOps

/** id → name from the image's own /etc/passwd or /etc/group (absent or unreadable: none). */
async function accountNames(root: string, file: string): Promise<Map<number, string>> {
  const names = new Map<number, string>()
  let text = ''
  try {
    text = await readFile((await resolveInRoot(root, file)).hostPath, 'utf8')
  } catch {
    return names
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':')
    const id = Number(fields[2])
    if (fields[0] && Number.isInteger(id) && !names.has(id)) names.set(id, fields[0])
  }
  return names
}

