// COPY and ADD of local files: sources matched in the context (or an earlier stage's root) with `*`, `?` and
// `[…]` wildcards, refused when they climb out of it; their content hashed for the layer cache; and copied
// into the image root without ever following a link the image or the context contains. These run where the
// owners are real (rootfs/ops.ts): copies belong to root unless --chown says otherwise, and an earlier stage
// or image is read as its root would read it.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { chmod, copyFile, lchown, lstat, mkdir, open, readdir, readlink, rm, stat, symlink, unlink } from 'node:fs/promises'
import { basename, join, posix } from 'node:path'
import { resolveInRoot } from './root-path.ts'
import { OpFailure } from './rootfs/failure.ts'

/** A COPY the builder refuses: the build fails with this message. */
function copyError(message: string): OpFailure {
  return new OpFailure('build', message)
}

export interface CopySource {
  /** Host path, the top-level link already followed. */
  hostPath: string
  /** As the pattern named it, for messages and keys. */
  shown: string
  isDir: boolean
}

const GLOB = /[*?[]/

function globRegex(pattern: string): RegExp {
  let source = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string
    if (c === '*') source += '[^/]*'
    else if (c === '?') source += '[^/]'
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 1)
      if (close < 0) {
        source += '\\['
        continue
      }
      const body = pattern.slice(i + 1, close).replace(/^!/, '^').replace(/\\/g, '\\\\')
      source += `[${body}]`
      i = close
    } else source += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
  }
  return new RegExp(`^${source}$`)
}

/** Context-relative components of a source, or a refusal when it climbs above the context root. */
function sourceParts(pattern: string): string[] {
  const parts: string[] = []
  for (const part of pattern.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (parts.length === 0) throw copyError(`forbidden path outside the build context: ${pattern}`)
      parts.pop()
    } else parts.push(part)
  }
  return parts
}

async function listDir(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort()
  } catch {
    return []
  }
}

/** Expands the patterns in `base` (the context or a stage root); every pattern must match something. */
export async function matchSources(base: string, patterns: string[]): Promise<CopySource[]> {
  const sources: CopySource[] = []
  for (const pattern of patterns) {
    const parts = sourceParts(pattern)
    let candidates: string[][] = [[]]
    for (const part of parts) {
      const next: string[][] = []
      for (const prefix of candidates) {
        if (!GLOB.test(part)) {
          next.push([...prefix, part])
          continue
        }
        const dir = await resolveInRoot(base, '/' + prefix.join('/'), { followLast: true })
        const re = globRegex(part)
        for (const entry of await listDir(dir.hostPath)) if (re.test(entry)) next.push([...prefix, entry])
      }
      candidates = next
    }
    if (candidates.length === 0) throw copyError(`no source files were specified (nothing matches ${pattern})`)
    for (const candidate of candidates) {
      const resolved = await resolveInRoot(base, '/' + candidate.join('/'), { followLast: true }).catch(() => null)
      if (!resolved?.exists) throw copyError(`failed to compute cache key: "/${candidate.join('/')}": not found`)
      const info = await stat(resolved.hostPath).catch(() => null)
      if (!info) throw copyError(`failed to compute cache key: "/${candidate.join('/')}": not found`)
      sources.push({ hostPath: resolved.hostPath, shown: '/' + candidate.join('/'), isDir: info.isDirectory() })
    }
  }
  return sources
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** What the copied content is: names, types, modes, bytes and link targets, in a stable order. */
export async function hashSources(sources: CopySource[]): Promise<string> {
  const hash = createHash('sha256')
  const visit = async (path: string, shown: string, follow: boolean): Promise<void> => {
    const info = follow ? await stat(path) : await lstat(path)
    if (info.isSymbolicLink()) {
      hash.update(`${shown}\0link\0${await readlink(path)}\n`)
    } else if (info.isDirectory()) {
      hash.update(`${shown}\0dir\0${(info.mode & 0o7777).toString(8)}\n`)
      for (const entry of await listDir(path)) await visit(join(path, entry), `${shown}/${entry}`, false)
    } else {
      hash.update(`${shown}\0file\0${(info.mode & 0o7777).toString(8)}\0${await hashFile(path)}\n`)
    }
  }
  for (const source of sources) await visit(source.hostPath, source.shown, true)
  return hash.digest('hex')
}

export interface CopyOptions {
  owner: { uid: number; gid: number } | null
  /** --chmod, applied to everything copied. */
  mode: number | null
}

async function lstatOrNull(path: string) {
  try {
    return await lstat(path)
  } catch {
    return null
  }
}

async function applyOwnership(path: string, opts: CopyOptions, sourceMode: number, isLink: boolean): Promise<void> {
  // Copied files belong to root unless --chown says otherwise; chown first, as it clears setuid/setgid bits.
  await lchown(path, opts.owner?.uid ?? 0, opts.owner?.gid ?? 0)
  if (!isLink) await chmod(path, opts.mode ?? sourceMode & 0o7777)
}

/** Copies one entry (recursively) to `target`, replacing what is there without following it. */
async function copyEntry(source: string, target: string, opts: CopyOptions, followSource: boolean): Promise<void> {
  const info = followSource ? await stat(source) : await lstat(source)
  const existing = await lstatOrNull(target)
  if (info.isDirectory()) {
    if (existing && !existing.isDirectory()) await unlink(target)
    if (!existing || !existing.isDirectory()) await mkdir(target)
    await applyOwnership(target, opts, info.mode, false)
    for (const entry of await listDir(source)) await copyEntry(join(source, entry), join(target, entry), opts, false)
    return
  }
  if (existing) await rm(target, { recursive: true, force: true })
  if (info.isSymbolicLink()) {
    await symlink(await readlink(source), target)
    await applyOwnership(target, opts, info.mode, true)
    return
  }
  await copyFile(source, target)
  await applyOwnership(target, opts, info.mode, false)
}

/**
 * Places `sources` at `dest` (absolute inside `root`, already substituted). A directory source contributes
 * its contents; `dest` is a directory when it ends in `/`, when there are several sources, or when it
 * already is one.
 */
export async function copyIntoRoot(root: string, sources: CopySource[], dest: string, opts: CopyOptions): Promise<void> {
  const wantsDir = dest.endsWith('/') || sources.length > 1 || (sources.length === 1 && (sources[0] as CopySource).isDir)
  const normal = posix.normalize(dest)
  const existing = await resolveInRoot(root, normal, { followLast: true }).catch(() => null)
  const destIsDir = wantsDir || (existing?.exists === true && (await stat(existing.hostPath)).isDirectory())
  // Directories the copy has to create are new content too: --chown's owner, else root.
  const create = { followLast: true, createDirs: true, createLast: true, owner: opts.owner ?? undefined }
  if (destIsDir) {
    const dir = await resolveInRoot(root, normal, create)
    const dirInfo = await stat(dir.hostPath)
    if (!dirInfo.isDirectory()) throw copyError(`cannot copy to ${dest}: not a directory`)
    for (const source of sources) {
      if (source.isDir) {
        for (const entry of await listDir(source.hostPath)) await copyEntry(join(source.hostPath, entry), join(dir.hostPath, entry), opts, false)
      } else {
        await copyEntry(source.hostPath, join(dir.hostPath, basename(source.shown)), opts, true)
      }
    }
    return
  }
  const parent = await resolveInRoot(root, posix.dirname(normal), create)
  await copyEntry((sources[0] as CopySource).hostPath, join(parent.hostPath, posix.basename(normal)), opts, true)
}

/** gzip, bzip2, xz or a plain tar: what ADD would unpack. */
export async function looksLikeArchive(path: string): Promise<boolean> {
  const head = Buffer.alloc(262)
  const handle = await open(path, 'r')
  try {
    const { bytesRead } = await handle.read(head, 0, head.length, 0)
    const bytes = head.subarray(0, bytesRead)
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) return true
    if (bytes.subarray(0, 3).toString('latin1') === 'BZh') return true
    if (bytes.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true
    return bytes.length >= 262 && bytes.subarray(257, 262).toString('latin1') === 'ustar'
  } finally {
    await handle.close()
  }
}
