/**
 * The build context as COPY/ADD see it. Nothing outside the context directory is ever read: sources
 * are checked lexically (no absolute paths, no `..` escape), then resolved one path component at a
 * time with lstat/readlink, and every symlink target must stay inside the context — we never lstat
 * a path outside it, not even as an intermediate hop (so a link that leaves and re-enters, such as
 * `../ctx/a.txt`, is refused too: following it would mean looking outside).
 *
 * Symlinks: a source named explicitly is followed (inside the context), as Docker does. Below a
 * directory source, resolveTree keeps links as links (their target text is only read, never
 * followed, so it may point anywhere) and reports every directory, empty ones included, with its
 * mode — what Docker's COPY puts in the image. resolveSources (uploads) follows links inside the
 * context instead and lists regular files only. Sockets, FIFOs and devices met while walking a
 * directory are skipped; named explicitly they are an error. A wildcard that matches nothing is
 * allowed (BuildKit allows it); a plain source that does not exist is an error.
 */
import { lstat, readdir, readlink, realpath, stat } from 'node:fs/promises'
import path from 'node:path'
import type { IgnoreMatcher } from './dockerignore.ts'
import { mapLimit } from '../concurrency.ts'
import { defaultFileHasher, type FileHasher } from './file-hasher.ts'

export class ContextError extends Error {
  /** The COPY/ADD source as written (or "." for a whole-context walk). */
  readonly source: string
  constructor(source: string, reason: string) {
    super(`build context: source "${source}": ${reason}`)
    this.name = 'ContextError'
    this.source = source
  }
}

export interface ContextFile {
  /** Posix path relative to the context root, as seen through the tree (a link's own path). */
  relPath: string
  /** Real absolute path that is read (inside the context). */
  absPath: string
  size: number
  /** st_mode & 0o7777. */
  mode: number
  /** Hex sha256 of the content. */
  sha256: string
  /** The source (as written) that produced this file. */
  source: string
  /** Whether the source (or wildcard match) that produced this file is a file or a directory. */
  sourceKind: 'file' | 'directory'
  /** Where the file goes below the destination: a file source's basename, or the path inside a directory source. */
  pathInSource: string
  /** Content is a tar archive (plain or compressed), which Docker's ADD would unpack. */
  archive: boolean
}

export interface ContextOptions {
  hasher?: FileHasher
  /** Files hashed at once; default 8 (hashing is CPU-bound, this only overlaps I/O). */
  concurrency?: number
}

/** A directory below a directory source (mode from the context). */
export interface ContextDir {
  relPath: string
  /** st_mode & 0o7777. */
  mode: number
  source: string
  pathInSource: string
}

/** A symbolic link below a directory source, kept as a link. */
export interface ContextLink {
  relPath: string
  /** The link's target text, as readlink gives it. */
  target: string
  source: string
  pathInSource: string
}

/** What a COPY of some sources puts in the image. */
export interface ContextTree {
  files: ContextFile[]
  dirs: ContextDir[]
  links: ContextLink[]
}

interface Listed {
  relPath: string
  absPath: string
  source: string
  sourceKind: 'file' | 'directory'
  pathInSource: string
}

const MAX_SYMLINK_HOPS = 40

/** Resolves COPY/ADD sources (relative to the context, Docker wildcards allowed) to files. */
export async function resolveSources(
  contextDir: string,
  sources: readonly string[],
  matcher: IgnoreMatcher,
  options: ContextOptions = {},
): Promise<ContextFile[]> {
  return (await collect(contextDir, sources, matcher, options, false)).files
}

/** COPY's view of the sources: files, directories and links, as Docker would place them. */
export async function resolveTree(
  contextDir: string,
  sources: readonly string[],
  matcher: IgnoreMatcher,
  options: ContextOptions = {},
): Promise<ContextTree> {
  return collect(contextDir, sources, matcher, options, true)
}

async function collect(
  contextDir: string,
  sources: readonly string[],
  matcher: IgnoreMatcher,
  options: ContextOptions,
  keepTree: boolean,
): Promise<ContextTree> {
  const root = await realpath(contextDir)
  const listed: Listed[] = []
  const dirs: ContextDir[] = []
  const links: ContextLink[] = []
  for (const source of sources) {
    const cleaned = checkSource(source)
    const wildcard = containsWildcards(cleaned)
    const candidates = wildcard ? await expandWildcards(root, cleaned, source) : [cleaned]
    let found = 0
    for (const rel of candidates) {
      const resolved = await resolveInside(root, rel, source)
      if (!resolved) {
        if (wildcard) continue
        throw new ContextError(source, 'not found in the build context')
      }
      const isDir = resolved.isDirectory
      if (rel !== '' && matcher.ignores(rel, isDir) && !(isDir && matcher.mayHaveIncludedChildren(rel))) {
        if (wildcard) continue
        throw new ContextError(source, 'excluded by .dockerignore')
      }
      if (isDir) {
        const tree = keepTree
          ? {
              dir: (relPath: string, mode: number) => dirs.push({ relPath, mode, source, pathInSource: relativeTo(rel, relPath) }),
              link: (relPath: string, target: string) => links.push({ relPath, target, source, pathInSource: relativeTo(rel, relPath) }),
            }
          : undefined
        await walkDirectory(root, rel, resolved.absPath, matcher, source, new Set([resolved.absPath]), (file) =>
          listed.push({ ...file, source, sourceKind: 'directory', pathInSource: relativeTo(rel, file.relPath) }),
        tree)
        found++
      } else if (resolved.isFile) {
        listed.push({ relPath: rel, absPath: resolved.absPath, source, sourceKind: 'file', pathInSource: path.posix.basename(rel) })
        found++
      } else if (!wildcard) {
        throw new ContextError(source, 'is not a regular file or directory')
      }
    }
    // BuildKit lets a wildcard match nothing (`COPY yarn.lock* ./`); a plain missing source failed above.
    if (found === 0 && !wildcard) throw new ContextError(source, 'no file in the build context matches it')
  }
  return { files: await hashAll(listed, options), dirs, links }
}

/** Every file of the context that .dockerignore keeps, sorted by path; for whole-context digests. */
export async function walkContext(contextDir: string, matcher: IgnoreMatcher, options: ContextOptions = {}): Promise<ContextFile[]> {
  const root = await realpath(contextDir)
  const listed: Listed[] = []
  await walkDirectory(root, '', root, matcher, '.', new Set([root]), (file) =>
    listed.push({ ...file, source: '.', sourceKind: 'directory', pathInSource: file.relPath }),
  )
  return hashAll(listed, options)
}

/** Adapter for the planner: one call per COPY/ADD. */
export function createSourceResolver(
  contextDir: string,
  matcher: IgnoreMatcher,
  options: ContextOptions = {},
): (sources: readonly string[]) => Promise<ContextFile[]> {
  return (sources) => resolveSources(contextDir, sources, matcher, options)
}

async function hashAll(listed: Listed[], options: ContextOptions): Promise<ContextFile[]> {
  const hasher = options.hasher ?? defaultFileHasher
  return mapLimit(listed, options.concurrency ?? 8, async (file) => {
    const digest = await hasher.hash(file.absPath)
    return { ...file, size: digest.size, mode: digest.mode, sha256: digest.sha256, archive: digest.archive }
  })
}

/** Lexical checks; returns the cleaned posix path relative to the context ("" for the root). */
function checkSource(source: string): string {
  if (source === '') throw new ContextError(source, 'empty source path')
  if (path.posix.isAbsolute(source) || path.win32.isAbsolute(source)) {
    throw new ContextError(source, 'absolute paths are not allowed; sources are relative to the build context')
  }
  const normalized = path.posix.normalize(source)
  if (normalized === '..' || normalized.startsWith('../')) {
    throw new ContextError(source, 'it points outside the build context ("..")')
  }
  return normalized === '.' || normalized === './' ? '' : normalized.replace(/\/+$/, '')
}

interface Resolved {
  absPath: string
  isDirectory: boolean
  isFile: boolean
}

/**
 * Follows `rel` from the context root one component at a time. Returns null when it does not exist;
 * throws ContextError when a symlink on the way (or at the end) leads outside the root.
 */
async function resolveInside(root: string, rel: string, source: string): Promise<Resolved | null> {
  const queue = rel.split('/').filter((part) => part !== '' && part !== '.')
  const current: string[] = []
  let hops = 0
  let lastLink = ''
  while (queue.length > 0) {
    const part = queue.shift() ?? ''
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (current.length === 0) throw new ContextError(source, `symbolic link "${lastLink}" points outside the build context`)
      current.pop()
      continue
    }
    const candidate = path.join(root, ...current, part)
    let info
    try {
      info = await lstat(candidate)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return null
      throw error
    }
    if (info.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) throw new ContextError(source, 'too many levels of symbolic links')
      lastLink = [...current, part].join('/')
      const target = await readlink(candidate)
      if (path.isAbsolute(target)) {
        // Only an absolute target spelled inside the (real) root is acceptable; nothing else is looked at.
        if (target !== root && !target.startsWith(`${root}/`)) {
          throw new ContextError(source, `symbolic link "${lastLink}" points outside the build context (${target})`)
        }
        current.length = 0
        queue.unshift(...target.slice(root.length).split('/'))
      } else {
        queue.unshift(...target.split('/'))
      }
      continue
    }
    if (queue.some((rest) => rest !== '' && rest !== '.') && !info.isDirectory()) return null
    current.push(part)
  }
  const absPath = path.join(root, ...current)
  const info = current.length === 0 ? await stat(root) : await lstat(absPath)
  return { absPath, isDirectory: info.isDirectory(), isFile: info.isFile() }
}

async function walkDirectory(
  root: string,
  relDir: string,
  absDir: string,
  matcher: IgnoreMatcher,
  source: string,
  ancestors: Set<string>,
  emit: (file: { relPath: string; absPath: string }) => void,
  tree?: { dir(relPath: string, mode: number): void; link(relPath: string, target: string): void },
): Promise<void> {
  const entries = (await readdir(absDir, { withFileTypes: true })).sort((a, b) => compare(a.name, b.name))
  for (const entry of entries) {
    const relPath = relDir === '' ? entry.name : `${relDir}/${entry.name}`
    let absPath = path.join(absDir, entry.name)
    let isDir = entry.isDirectory()
    let isFile = entry.isFile()
    if (entry.isSymbolicLink() && tree) {
      if (!matcher.ignores(relPath, false)) tree.link(relPath, await readlink(path.join(absDir, entry.name)))
      continue
    }
    if (entry.isSymbolicLink()) {
      // An ignored link is never followed, so it cannot make an otherwise-excluded escape fail the build.
      if (matcher.ignores(relPath, false) && !matcher.mayHaveIncludedChildren(relPath)) continue
      const resolved = await resolveInside(root, relPath, source)
      if (!resolved) continue // dangling link: nothing to copy
      absPath = resolved.absPath
      isDir = resolved.isDirectory
      isFile = resolved.isFile
    }
    if (matcher.ignores(relPath, isDir) && !(isDir && matcher.mayHaveIncludedChildren(relPath))) continue
    if (isDir) {
      if (ancestors.has(absPath)) throw new ContextError(source, `symbolic link loop at "${relPath}"`)
      ancestors.add(absPath)
      // An ignored directory walked only for its re-included children is still created (Docker does).
      if (tree) tree.dir(relPath, (await stat(absPath)).mode & 0o7777)
      await walkDirectory(root, relPath, absPath, matcher, source, ancestors, emit, tree)
      ancestors.delete(absPath)
    } else if (isFile) {
      emit({ relPath, absPath })
    }
  }
}

/** Docker's containsWildcards: an unescaped `*`, `?` or `[`. */
export function containsWildcards(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]
    if (ch === '\\') i++
    else if (ch === '*' || ch === '?' || ch === '[') return true
  }
  return false
}

/** Expands a wildcard source segment by segment, Go filepath.Match style (`*` matches dotfiles too). */
async function expandWildcards(root: string, pattern: string, source: string): Promise<string[]> {
  let prefixes = ['']
  const segments = pattern.split('/')
  for (const [index, segment] of segments.entries()) {
    const last = index === segments.length - 1
    const next: string[] = []
    for (const prefix of prefixes) {
      const join = (name: string): string => (prefix === '' ? name : `${prefix}/${name}`)
      if (!containsWildcards(segment)) {
        next.push(join(segment))
        continue
      }
      const dir = await resolveInside(root, prefix, source)
      if (!dir?.isDirectory) continue
      const regexp = segmentMatcher(segment, source)
      for (const name of (await readdir(dir.absPath)).sort(compare)) if (regexp.test(name)) next.push(join(name))
    }
    // Only directories (reached without leaving the context) can hold the next segment's matches.
    prefixes = last ? next : await onlyDirectories(root, next, source)
  }
  return prefixes
}

async function onlyDirectories(root: string, candidates: string[], source: string): Promise<string[]> {
  const kept: string[] = []
  for (const candidate of candidates) {
    try {
      if ((await resolveInside(root, candidate, source))?.isDirectory) kept.push(candidate)
    } catch (error) {
      if (!(error instanceof ContextError)) throw error
    }
  }
  return kept
}

function segmentMatcher(segment: string, source: string): RegExp {
  let out = '^'
  const chars = Array.from(segment)
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] ?? ''
    if (ch === '*') out += '.*'
    else if (ch === '?') out += '.'
    else if (ch === '\\') out += escapeChar(chars[++i] ?? '\\')
    else if (ch === '[') {
      const end = chars.indexOf(']', i + 2)
      if (end === -1) throw new ContextError(source, 'bad wildcard pattern: unterminated [')
      const body = chars.slice(i + 1, end).join('')
      out += `[${body.replace(/[\\\]]/g, '\\$&')}]`
      i = end
    } else out += escapeChar(ch)
  }
  try {
    return new RegExp(`${out}$`, 'su')
  } catch {
    throw new ContextError(source, 'bad wildcard pattern')
  }
}

function escapeChar(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(ch) ? `\\${ch}` : ch
}

function relativeTo(base: string, relPath: string): string {
  return base === '' ? relPath : relPath.slice(base.length + 1)
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
