// The agent's filesystem routes (sandbox-openapi.json: files, directories, file_stat) on a sandbox root.
// Where the spec is silent the emulator is strict: creating a file or a directory never creates missing
// parents, creating a directory that exists fails, deleting a directory through the files route is refused.
// Failures the spec has no status for are 500s with Go-style messages, as the agent answers them.
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { copyFile, cp, lstat, mkdir, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { join, posix } from 'node:path'
import { HttpError } from './http-io.ts'
import { resolveInRoot, RootPathError, type Resolved } from './root-path.ts'
import type { RecordedRequest } from './types.ts'

/** The absolute in-sandbox path of a `{path}` parameter: relative paths are relative to the workspace. */
export function agentPath(raw: string, workspaceDir: string): string {
  if (raw === '') throw new HttpError(400, 'path is required')
  return posix.normalize(raw.startsWith('/') ? raw : posix.join(workspaceDir, raw))
}

async function resolve(root: string, path: string, followLast: boolean): Promise<Resolved> {
  try {
    return await resolveInRoot(root, path, { followLast })
  } catch (error) {
    if (error instanceof RootPathError) {
      if (error.code === 'ENOENT') return { hostPath: '', rootPath: path, exists: false }
      throw new HttpError(500, `stat ${path}: ${error.message.replace(/^[^:]*: /, '')}`)
    }
    throw error
  }
}

function fileContent(path: string, bytes: Buffer): { path: string; content: string; encoding: 'utf-8' | 'base64' } {
  try {
    return { path, content: new TextDecoder('utf-8', { fatal: true }).decode(bytes), encoding: 'utf-8' }
  } catch {
    return { path, content: bytes.toString('base64'), encoding: 'base64' }
  }
}

function fileInfo(path: string, info: { isDirectory(): boolean; size: number; mtime: Date }): Record<string, unknown> {
  return { name: posix.basename(path) || '/', path, isDir: info.isDirectory(), size: info.size, modTime: info.mtime.toISOString() }
}

export async function readSandboxFile(root: string, path: string): Promise<Record<string, unknown>> {
  const target = await resolve(root, path, true)
  if (!target.exists) throw new HttpError(404, `open ${path}: no such file or directory`)
  if ((await stat(target.hostPath)).isDirectory()) throw new HttpError(400, `read ${path}: is a directory`)
  return fileContent(path, await readFile(target.hostPath))
}

/** Streams the request body into the file (created 0644 or truncated), then echoes it as the spec's 201 body. */
export async function writeSandboxFile(root: string, path: string, req: IncomingMessage, record: RecordedRequest): Promise<Record<string, unknown>> {
  const parent = await resolve(root, posix.dirname(path), true)
  if (!parent.exists) throw new HttpError(500, `open ${path}: no such file or directory`)
  if (!(await stat(parent.hostPath)).isDirectory()) throw new HttpError(500, `open ${path}: not a directory`)
  const target = await resolve(root, path, true)
  const hostPath = target.exists ? target.hostPath : join(parent.hostPath, posix.basename(path))
  if (target.exists && (await stat(hostPath)).isDirectory()) throw new HttpError(500, `open ${path}: is a directory`)
  const out = createWriteStream(hostPath, { mode: 0o644 })
  await once(out, 'open')
  for await (const chunk of req) {
    record.bodyBytes += (chunk as Buffer).length
    if (!out.write(chunk)) await once(out, 'drain')
  }
  await new Promise<void>((done, fail) => out.end((error?: Error | null) => (error ? fail(error) : done())))
  return fileContent(path, await readFile(hostPath))
}

export async function deleteSandboxFile(root: string, path: string): Promise<Record<string, unknown>> {
  const target = await resolve(root, path, false)
  if (!target.exists) throw new HttpError(404, `remove ${path}: no such file or directory`)
  if ((await lstat(target.hostPath)).isDirectory()) throw new HttpError(400, `remove ${path}: is a directory (use the directories route)`)
  await unlink(target.hostPath)
  return { message: 'File deleted successfully', path }
}

export async function statSandboxFile(root: string, path: string): Promise<Record<string, unknown>> {
  const target = await resolve(root, path, true)
  if (!target.exists) throw new HttpError(404, `stat ${path}: no such file or directory`)
  return fileInfo(path, await stat(target.hostPath))
}

export async function createSandboxDirectory(root: string, path: string): Promise<Record<string, unknown>> {
  const parent = await resolve(root, posix.dirname(path), true)
  if (!parent.exists || !(await stat(parent.hostPath)).isDirectory()) throw new HttpError(500, `mkdir ${path}: no such file or directory`)
  const target = await resolve(root, path, false)
  if (target.exists) throw new HttpError(500, `mkdir ${path}: file exists`)
  await mkdir(join(parent.hostPath, posix.basename(path)), { mode: 0o755 })
  return { message: 'Directory created successfully', path }
}

export async function listSandboxDirectory(root: string, path: string): Promise<Record<string, unknown>> {
  const target = await resolve(root, path, true)
  if (!target.exists) throw new HttpError(404, `open ${path}: no such file or directory`)
  if (!(await stat(target.hostPath)).isDirectory()) throw new HttpError(400, `readdir ${path}: not a directory`)
  const files = []
  for (const name of (await readdir(target.hostPath)).sort()) {
    const info = await stat(join(target.hostPath, name)).catch(() => lstat(join(target.hostPath, name)))
    files.push(fileInfo(posix.join(path, name), info))
  }
  return { path, files }
}

export async function deleteSandboxDirectory(root: string, path: string): Promise<Record<string, unknown>> {
  const target = await resolve(root, path, false)
  if (!target.exists) throw new HttpError(404, `remove ${path}: no such file or directory`)
  if (!(await lstat(target.hostPath)).isDirectory()) throw new HttpError(400, `remove ${path}: not a directory`)
  if (target.rootPath === '/') throw new HttpError(400, 'refusing to remove /')
  await rm(target.hostPath, { recursive: true, force: true })
  return { message: 'Directory deleted successfully', path }
}

/** PATCH: `move` renames, `copy` copies (a directory only with `recursive`). */
export async function fileAction(root: string, from: string, action: 'move' | 'copy', to: string, recursive: boolean): Promise<Record<string, unknown>> {
  const source = await resolve(root, from, false)
  if (!source.exists) throw new HttpError(500, `${action} ${from}: no such file or directory`)
  const parent = await resolve(root, posix.dirname(to), true)
  if (!parent.exists || !(await stat(parent.hostPath)).isDirectory()) throw new HttpError(500, `${action} ${to}: no such file or directory`)
  const destination = join(parent.hostPath, posix.basename(to))
  if (action === 'move') {
    await rename(source.hostPath, destination)
  } else if ((await lstat(source.hostPath)).isDirectory()) {
    if (!recursive) throw new HttpError(400, `copy ${from}: is a directory (set "recursive")`)
    await cp(source.hostPath, destination, { recursive: true, verbatimSymlinks: true, errorOnExist: false, force: true })
  } else {
    await copyFile(source.hostPath, destination)
  }
  return { message: `File ${action === 'move' ? 'moved' : 'copied'} successfully`, from, to }
}
