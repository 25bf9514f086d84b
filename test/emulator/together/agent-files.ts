// The agent's filesystem (sandbox-openapi.json: files, directories, file_stat) on a sandbox root, done as the
// agent does it: as root of the sandbox, so owner-only files are readable and what it creates belongs to
// root (new files 0644, directories 0755; a file it truncates keeps its owner and mode; copies are the
// agent's, with the source's mode). These run where the owners are real (rootfs/ops.ts). Where the spec is
// silent the emulator is strict: creating a file or a directory never creates missing parents, creating a
// directory that exists fails, deleting a directory through the files route is refused. Failures the spec
// has no status for are 500s with Go-style messages, as the agent answers them.
import { createReadStream, createWriteStream } from 'node:fs'
import { chmod, copyFile, cp, lstat, mkdir, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { resolveInRoot, RootPathError, type Resolved } from './root-path.ts'
import { OpFailure } from './rootfs/failure.ts'

export interface FileContent {
  path: string
  content: string
  encoding: 'utf-8' | 'base64'
}

export interface FileInfo {
  name: string
  path: string
  isDir: boolean
  size: number
  modTime: string
}

const FILE_MODE = 0o644
const DIRECTORY_MODE = 0o755

async function resolve(root: string, path: string, followLast: boolean): Promise<Resolved> {
  try {
    return await resolveInRoot(root, path, { followLast })
  } catch (error) {
    if (error instanceof RootPathError) {
      if (error.code === 'ENOENT') return { hostPath: '', rootPath: path, exists: false }
      throw new OpFailure('agent-500', `stat ${path}: ${error.message.replace(/^[^:]*: /, '')}`)
    }
    throw error
  }
}

function fileContent(path: string, bytes: Buffer): FileContent {
  try {
    return { path, content: new TextDecoder('utf-8', { fatal: true }).decode(bytes), encoding: 'utf-8' }
  } catch {
    return { path, content: bytes.toString('base64'), encoding: 'base64' }
  }
}

function fileInfo(path: string, info: { isDirectory(): boolean; size: number; mtime: Date }): FileInfo {
  return { name: posix.basename(path) || '/', path, isDir: info.isDirectory(), size: info.size, modTime: info.mtime.toISOString() }
}

export async function readSandboxFile(root: string, path: string): Promise<FileContent> {
  const target = await resolve(root, path, true)
  if (!target.exists) throw new OpFailure('agent-404', `open ${path}: no such file or directory`)
  if ((await stat(target.hostPath)).isDirectory()) throw new OpFailure('agent-400', `read ${path}: is a directory`)
  return fileContent(path, await readFile(target.hostPath))
}

/** Where a write of `path` lands (host path and whether a file is there), or the agent's refusal. */
async function writeTarget(root: string, path: string): Promise<{ hostPath: string; exists: boolean }> {
  const parent = await resolve(root, posix.dirname(path), true)
  if (!parent.exists) throw new OpFailure('agent-500', `open ${path}: no such file or directory`)
  if (!(await stat(parent.hostPath)).isDirectory()) throw new OpFailure('agent-500', `open ${path}: not a directory`)
  const target = await resolve(root, path, true)
  const hostPath = target.exists ? target.hostPath : join(parent.hostPath, posix.basename(path))
  if (target.exists && (await stat(hostPath)).isDirectory()) throw new OpFailure('agent-500', `open ${path}: is a directory`)
  return { hostPath, exists: target.exists }
}

/** Checked before the body is received, so a write that cannot succeed never stores it. */
export async function checkWritable(root: string, path: string): Promise<void> {
  await writeTarget(root, path)
}

/** Writes the bytes of `source` (the received body) to the file, created 0644 or truncated, and echoes it. */
export async function writeSandboxFile(root: string, path: string, source: string): Promise<FileContent> {
  const target = await writeTarget(root, path)
  await pipeline(createReadStream(source), createWriteStream(target.hostPath, { mode: FILE_MODE }))
  // The create mode passed the umask; a new file is exactly 0644 (an existing one keeps its mode).
  if (!target.exists) await chmod(target.hostPath, FILE_MODE)
  return fileContent(path, await readFile(target.hostPath))
}

export async function deleteSandboxFile(root: string, path: string): Promise<{ message: string; path: string }> {
  const target = await resolve(root, path, false)
  if (!target.exists) throw new OpFailure('agent-404', `remove ${path}: no such file or directory`)
  if ((await lstat(target.hostPath)).isDirectory()) throw new OpFailure('agent-400', `remove ${path}: is a directory (use the directories route)`)
  await unlink(target.hostPath)
  return { message: 'File deleted successfully', path }
}

export async function statSandboxFile(root: string, path: string): Promise<FileInfo> {
  const target = await resolve(root, path, true)
  if (!target.exists) throw new OpFailure('agent-404', `stat ${path}: no such file or directory`)
  return fileInfo(path, await stat(target.hostPath))
}

export async function createSandboxDirectory(root: string, path: string): Promise<{ message: string; path: string }> {
  const parent = await resolve(root, posix.dirname(path), true)
  if (!parent.exists || !(await stat(parent.hostPath)).isDirectory()) throw new OpFailure('agent-500', `mkdir ${path}: no such file or directory`)
  const target = await resolve(root, path, false)
  if (target.exists) throw new OpFailure('agent-500', `mkdir ${path}: file exists`)
  const hostPath = join(parent.hostPath, posix.basename(path))
  await mkdir(hostPath)
  await chmod(hostPath, DIRECTORY_MODE)
  return { message: 'Directory created successfully', path }
}

export async function listSandboxDirectory(root: string, path: string): Promise<{ path: string; files: FileInfo[] }> {
  const target = await resolve(root, path, true)
  if (!target.exists) throw new OpFailure('agent-404', `open ${path}: no such file or directory`)
  if (!(await stat(target.hostPath)).isDirectory()) throw new OpFailure('agent-400', `readdir ${path}: not a directory`)
  const files: FileInfo[] = []
  for (const name of (await readdir(target.hostPath)).sort()) {
    // A link is described by what it points to inside the root (never a host path); a dangling one by itself.
    const followed = await resolveInRoot(root, posix.join(target.rootPath, name), { followLast: true }).catch(() => null)
    const info = followed?.exists ? await stat(followed.hostPath) : await lstat(join(target.hostPath, name))
    files.push(fileInfo(posix.join(path, name), info))
  }
  return { path, files }
}

export async function deleteSandboxDirectory(root: string, path: string): Promise<{ message: string; path: string }> {
  const target = await resolve(root, path, false)
  if (!target.exists) throw new OpFailure('agent-404', `remove ${path}: no such file or directory`)
  if (!(await lstat(target.hostPath)).isDirectory()) throw new OpFailure('agent-400', `remove ${path}: not a directory`)
  if (target.rootPath === '/') throw new OpFailure('agent-400', 'refusing to remove /')
  await rm(target.hostPath, { recursive: true, force: true })
  return { message: 'Directory deleted successfully', path }
}

/** PATCH: `move` renames, `copy` copies (a directory only with `recursive`). */
export async function fileAction(
  root: string,
  from: string,
  action: 'move' | 'copy',
  to: string,
  recursive: boolean,
): Promise<{ message: string; from: string; to: string }> {
  // A move takes a link itself; a copy copies what it points to inside the root, as the agent's open() would.
  const source = await resolve(root, from, action === 'copy')
  if (!source.exists) throw new OpFailure('agent-500', `${action} ${from}: no such file or directory`)
  const parent = await resolve(root, posix.dirname(to), true)
  if (!parent.exists || !(await stat(parent.hostPath)).isDirectory()) throw new OpFailure('agent-500', `${action} ${to}: no such file or directory`)
  const destination = join(parent.hostPath, posix.basename(to))
  if (action === 'move') {
    await rename(source.hostPath, destination)
  } else if ((await lstat(source.hostPath)).isDirectory()) {
    if (!recursive) throw new OpFailure('agent-400', `copy ${from}: is a directory (set "recursive")`)
    await cp(source.hostPath, destination, { recursive: true, verbatimSymlinks: true, errorOnExist: false, force: true })
  } else {
    await copyFile(source.hostPath, destination)
  }
  return { message: `File ${action === 'move' ? 'moved' : 'copied'} successfully`, from, to }
}
