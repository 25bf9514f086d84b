/**
 * Docker's destination rules for COPY/ADD, applied to what was resolved from the context:
 * - one non-wildcard file source and a destination not ending in "/" → the destination is the file,
 *   unless the image already has a directory there: then the file goes inside it (decided where the
 *   image is, at run time, so the entry carries the name to use);
 * - several sources, or a wildcard → the destination must end in "/" (Docker's own error otherwise);
 * - a directory source copies its contents (not the directory itself) below the destination, its
 *   subdirectories (empty ones too) and symlinks included;
 * - a relative destination is joined to WORKDIR; "." and a trailing "/" or "/." mean a directory.
 * Ownership: `--chown` is kept as written (names are resolved against the image's own /etc/passwd
 * when the step runs); without it, 0:0. Mode: `--chmod` (octal), else the context's permission
 * bits — on a Windows runner Docker's rule for files that carry no Unix modes (0755 style).
 */
import path from 'node:path'
import { containsWildcards, type ContextFile, type ContextTree } from '../../../dockerfile/context.ts'

export class CopyPlanError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CopyPlanError'
  }
}

/** Where a file's bytes come from. */
export type EntryContent =
  | { kind: 'context'; file: ContextFile }
  /** COPY heredocs: the text, already expanded when the delimiter was not quoted. */
  | { kind: 'inline'; bytes: Uint8Array; sha256: string }
  | { kind: 'url'; url: string; checksum?: string }

/** One thing COPY/ADD puts in the image. */
export interface CopyEntry {
  /** Absolute path in the image. */
  path: string
  type: 'file' | 'dir' | 'symlink'
  /** Permission bits. */
  mode: number
  content?: EntryContent
  /** Link target text (symlinks). */
  target?: string
  /** Lone file to a path that may be an existing directory in the image: then it lands inside, under this name. */
  intoDirName?: string
}

export interface CopyRequest {
  keyword: 'COPY' | 'ADD'
  /** Sources after substitution, as written (used for the "several sources" and wildcard rules). */
  sources: readonly string[]
  /** Destination after substitution. */
  dest: string
  /** Absolute WORKDIR in force. */
  workdir: string
  tree: ContextTree
  chmod?: number
  /** The runner's OS, for Docker's Windows mode rule; `process.platform` by default. */
  hostPlatform?: NodeJS.Platform
}

export function planCopy(request: CopyRequest): CopyEntry[] {
  const { keyword } = request
  const destIsDir = destinationIsDirectory(request.dest)
  const multiple = request.sources.length > 1 || request.sources.some(containsWildcards)
  if (multiple && !destIsDir) {
    throw new CopyPlanError(`When using ${keyword} with more than one source file, the destination must be a directory and end with a /`)
  }
  const dest = absoluteDestination(request.dest, request.workdir)
  const host = request.hostPlatform ?? process.platform
  const modeOf = (mode: number): number => request.chmod ?? contextMode(mode, host)
  const entries: CopyEntry[] = []
  for (const dir of request.tree.dirs) entries.push({ path: path.posix.join(dest, dir.pathInSource), type: 'dir', mode: modeOf(dir.mode) })
  for (const file of request.tree.files) {
    const lone = file.sourceKind === 'file' && !destIsDir && !multiple
    const entry: CopyEntry = { path: lone ? dest : path.posix.join(dest, file.pathInSource), type: 'file', mode: modeOf(file.mode), content: { kind: 'context', file } }
    if (lone) entry.intoDirName = path.posix.basename(file.relPath)
    entries.push(entry)
  }
  for (const link of request.tree.links) entries.push({ path: path.posix.join(dest, link.pathInSource), type: 'symlink', mode: 0o777, target: link.target })
  return entries
}

/**
 * The mode Docker gives a context entry. A Windows client sends no Unix modes, and Docker's rule for
 * them is to drop group/other write and add every execute bit (0644 → 0755, read-only → 0555).
 */
export function contextMode(mode: number, hostPlatform: NodeJS.Platform): number {
  const bits = mode & 0o7777
  return hostPlatform === 'win32' ? (bits & 0o755) | 0o111 : bits
}

/** Where an ADD of a URL lands: the URL's file name below a directory destination, else the destination. */
export function urlDestination(url: string, dest: string, workdir: string, multiple: boolean): string {
  const absolute = absoluteDestination(dest, workdir)
  if (!destinationIsDirectory(dest)) {
    if (multiple) throw new CopyPlanError('When using ADD with more than one source file, the destination must be a directory and end with a /')
    return absolute
  }
  let name: string
  try {
    name = path.posix.basename(decodeURIComponent(new URL(url).pathname))
  } catch {
    name = ''
  }
  if (name === '' || name === '/' || name === '.' || name === '..') {
    throw new CopyPlanError(`cannot determine a file name from ${url}; give ADD a destination file path (not ending in /)`)
  }
  return path.posix.join(absolute, name)
}

export function destinationIsDirectory(dest: string): boolean {
  return dest === '' || dest === '.' || dest.endsWith('/') || dest.endsWith('/.')
}

export function absoluteDestination(dest: string, workdir: string): string {
  const joined = path.posix.isAbsolute(dest) ? dest : path.posix.join(workdir || '/', dest)
  const normalized = path.posix.normalize(joined)
  return normalized.length > 1 ? normalized.replace(/\/+$/, '') : normalized
}

/** `--chown=user[:group]` as written (names or ids); undefined when not given. Checked for shape only. */
export function parseChown(value: string | undefined, keyword = 'COPY'): string | undefined {
  if (value === undefined) return undefined
  const parts = value.split(':')
  if (value === '' || parts.length > 2 || parts.some((part) => part === '')) throw new CopyPlanError(`${keyword} --chown="${value}": expected user[:group]`)
  return value
}

/** `--chmod=` octal (3 or 4 digits); undefined when not given. */
export function parseChmod(value: string | undefined, keyword = 'COPY'): number | undefined {
  if (value === undefined) return undefined
  if (!/^[0-7]{3,4}$/.test(value)) throw new CopyPlanError(`${keyword} --chmod="${value}": expected an octal mode such as 0755`)
  return Number.parseInt(value, 8)
}

export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0')
}

