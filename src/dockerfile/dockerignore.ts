/**
 * Docker's .dockerignore semantics (moby/patternmatcher): patterns are cleaned paths relative to the
 * context; `*` and `?` stay within a path segment, `**` spans any number of segments, `[...]` is a
 * character class; a pattern that matches a directory also matches everything below it; `!` marks an
 * exception; the last matching pattern decides. Docker adds no implicit excludes, and neither do we.
 */
import { readFile } from 'node:fs/promises'
import path from 'node:path'

export interface IgnoreMatcher {
  /** True when the path (posix, relative to the context, no leading "./") is excluded. */
  ignores(relPosixPath: string, isDir: boolean): boolean
  /**
   * False only when no exception pattern could re-include anything below this directory, so a walk
   * may prune it when it is ignored. Conservative: true whenever unsure.
   */
  mayHaveIncludedChildren(relDir: string): boolean
}

interface CompiledPattern {
  exclusion: boolean
  regexp: RegExp
  /** The cleaned pattern split on "/", for the pruning check. */
  segments: string[]
}

export class DockerignoreError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DockerignoreError'
  }
}

/**
 * Reads the ignore patterns of a build: `<Dockerfile>.dockerignore` beside the Dockerfile when it
 * exists (it takes precedence, as in BuildKit), else `<contextDir>/.dockerignore`; neither means none.
 */
export async function readDockerignore(contextDir: string, dockerfile?: string): Promise<string[]> {
  const candidates = [...(dockerfile ? [`${dockerfile}.dockerignore`] : []), path.join(contextDir, '.dockerignore')]
  for (const candidate of candidates) {
    let text: string
    try {
      text = await readFile(candidate, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw error
    }
    return parseDockerignore(text)
  }
  return []
}

/** The pattern lines of a .dockerignore text, normalised as Docker does. */
export function parseDockerignore(text: string): string[] {
  const patterns: string[] = []
  for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    // Docker only treats `#` in the first column as a comment, before trimming.
    if (raw.startsWith('#')) continue
    let pattern = raw.trim()
    if (pattern === '') continue
    const exclusion = pattern.startsWith('!')
    if (exclusion) pattern = pattern.slice(1).trim()
    if (pattern !== '') {
      pattern = path.posix.normalize(pattern)
      if (pattern.length > 1 && pattern.endsWith('/')) pattern = pattern.slice(0, -1)
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1)
    }
    patterns.push(exclusion ? `!${pattern}` : pattern)
  }
  return patterns
}

export function createIgnoreMatcher(patterns: readonly string[]): IgnoreMatcher {
  const compiled = patterns.map(compilePattern)
  const exceptions = compiled.filter((pattern) => pattern.exclusion)

  return {
    ignores(relPosixPath: string): boolean {
      const target = cleanRelative(relPosixPath)
      const parents = parentPaths(target)
      let ignored = false
      for (const pattern of compiled) {
        // A pattern matching a parent directory matches the path too (Docker checks both).
        const matched = pattern.regexp.test(target) || parents.some((parent) => pattern.regexp.test(parent))
        if (matched) ignored = !pattern.exclusion
      }
      return ignored
    },
    mayHaveIncludedChildren(relDir: string): boolean {
      const dirSegments = cleanRelative(relDir).split('/').filter((segment) => segment !== '' && segment !== '.')
      return exceptions.some((pattern) => couldMatchBelow(pattern.segments, dirSegments))
    },
  }
}

function compilePattern(raw: string): CompiledPattern {
  const exclusion = raw.startsWith('!')
  const pattern = exclusion ? raw.slice(1) : raw
  if (exclusion && pattern === '') throw new DockerignoreError('illegal exclusion pattern: "!"')
  let source = '^'
  const chars = Array.from(pattern)
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] ?? ''
    if (ch === '*') {
      if (chars[i + 1] === '*') {
        i++
        if (chars[i + 1] === '/') i++
        // `**` at the end matches everything; elsewhere it is any number of whole directories.
        source += i + 1 >= chars.length ? '.*' : '(?:.*/)?'
      } else {
        source += '[^/]*'
      }
    } else if (ch === '?') {
      source += '[^/]'
    } else if (ch === '\\') {
      const next = chars[i + 1]
      if (next === undefined) source += '\\\\'
      else {
        source += escapeRegExpChar(next)
        i++
      }
    } else if (ch === '[') {
      const end = chars.indexOf(']', i + 2)
      if (end === -1) throw new DockerignoreError(`invalid .dockerignore pattern "${raw}": unterminated [`)
      // Docker copies a class through; `!` negation is not special in Go's syntax either, only `^`.
      const body = chars.slice(i + 1, end).join('')
      source += `[${body.replace(/[\\\]]/g, '\\$&')}]`
      i = end
    } else {
      source += escapeRegExpChar(ch)
    }
  }
  source += '(?:/.*)?$'
  let regexp: RegExp
  try {
    regexp = new RegExp(source, 'su')
  } catch {
    throw new DockerignoreError(`invalid .dockerignore pattern "${raw}"`)
  }
  return { exclusion, regexp, segments: pattern.split('/') }
}

/** Whether a pattern could match the directory itself or something inside it. */
function couldMatchBelow(patternSegments: string[], dirSegments: string[]): boolean {
  for (let i = 0; i < dirSegments.length; i++) {
    const segment = patternSegments[i]
    // The pattern ended on an ancestor: it matches everything below it.
    if (segment === undefined) return true
    if (segment.includes('**')) return true
    if (!segmentRegExp(segment).test(dirSegments[i] ?? '')) return false
  }
  return true
}

function segmentRegExp(segment: string): RegExp {
  try {
    return compilePattern(segment).regexp
  } catch {
    // An unusable segment cannot be ruled out cheaply; stay conservative.
    return /^/
  }
}

function parentPaths(target: string): string[] {
  const segments = target.split('/')
  const parents: string[] = []
  for (let i = 1; i < segments.length; i++) parents.push(segments.slice(0, i).join('/'))
  return parents
}

function cleanRelative(relPath: string): string {
  const cleaned = path.posix.normalize(relPath)
  return cleaned.replace(/^\.\/+/, '').replace(/\/+$/, '') || '.'
}

function escapeRegExpChar(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(ch) ? `\\${ch}` : ch
}
