/**
 * Docker's destination rules for COPY/ADD, applied to files already resolved from the context:
 * - one non-wildcard file source and a destination not ending in "/" → the destination is the file;
 * - several sources, or a wildcard → the destination must end in "/" (Docker's own error otherwise);
 * - a directory source copies its contents (not the directory itself) below the destination;
 * - a relative destination is joined to WORKDIR; "." and a trailing "/" or "/." mean a directory.
 * Ownership: `--chown` takes numeric ids, or "root" (0); other names are refused because no
 * /etc/passwd of the image can be read client-side. A missing group means gid = uid, as in Docker.
 * Mode: `--chmod` (octal), else the context file's own permission bits.
 */
import path from 'node:path'
import { containsWildcards, type ContextFile } from './context.ts'

export class CopyPlanError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CopyPlanError'
  }
}

export interface PlacedFile {
  file: ContextFile
  /** Four-digit octal, e.g. "0644". */
  mode: string
  uid: number
  gid: number
}

export interface CopyRequest {
  keyword: 'COPY' | 'ADD'
  /** Sources after substitution, as written (used for the "several sources" and wildcard rules). */
  sources: readonly string[]
  /** Destination after substitution. */
  dest: string
  /** Absolute WORKDIR in force. */
  workdir: string
  /** Files resolved for the local sources. */
  files: readonly ContextFile[]
  chown?: string
  chmod?: string
}

export interface Ownership {
  uid: number
  gid: number
}

export function planCopy(request: CopyRequest): Record<string, PlacedFile> {
  const { keyword } = request
  const destIsDir = destinationIsDirectory(request.dest)
  const multiple = request.sources.length > 1 || request.sources.some(containsWildcards)
  if (multiple && !destIsDir) {
    throw new CopyPlanError(`When using ${keyword} with more than one source file, the destination must be a directory and end with a /`)
  }
  const dest = absoluteDestination(request.dest, request.workdir)
  const owner = parseChown(request.chown, keyword)
  const chmod = parseChmod(request.chmod, keyword)
  const placed: Record<string, PlacedFile> = {}
  for (const file of request.files) {
    const target =
      file.sourceKind === 'file' && !destIsDir && !multiple ? dest : path.posix.join(dest, file.pathInSource)
    placed[target] = { file, mode: chmod ?? formatMode(file.mode), uid: owner.uid, gid: owner.gid }
  }
  return placed
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

/** `--chown=uid[:gid]`; numeric ids or "root". Undefined flag → 0:0 (Docker's default). */
export function parseChown(value: string | undefined, keyword = 'COPY'): Ownership {
  if (value === undefined) return { uid: 0, gid: 0 }
  const parts = value.split(':')
  if (value === '' || parts.length > 2) throw new CopyPlanError(`${keyword} --chown="${value}": expected uid[:gid]`)
  const uid = parseId(parts[0] ?? '', 'user', value, keyword)
  const gid = parts.length === 2 ? parseId(parts[1] ?? '', 'group', value, keyword) : uid
  return { uid, gid }
}

function parseId(text: string, what: string, value: string, keyword: string): number {
  if (text === 'root') return 0
  if (/^\d+$/.test(text)) {
    const id = Number(text)
    if (id <= 0xffffffff) return id
  }
  throw new CopyPlanError(
    `${keyword} --chown="${value}": ${what} "${text}" must be a numeric id (or root); names cannot be looked up outside the image`,
  )
}

/** `--chmod=` octal (3 or 4 digits) → "0755"; undefined when not given. */
export function parseChmod(value: string | undefined, keyword = 'COPY'): string | undefined {
  if (value === undefined) return undefined
  if (!/^[0-7]{3,4}$/.test(value)) throw new CopyPlanError(`${keyword} --chmod="${value}": expected an octal mode such as 0755`)
  return value.padStart(4, '0')
}

export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0')
}

