/**
 * What of a build context goes to the remote builder: every file, directory and symbolic link that the
 * ignore rules keep, as Docker's client would send it, plus the Dockerfile (always, even when ignored
 * or outside the context). Nothing outside the context is ever read: the walk enters real directories
 * only, reads regular files without following a last-component link, and keeps links as links (their
 * target text is read, never followed). A link is kept only when its target stays inside the context;
 * others are reported and left out (the builder could only see them dangling).
 *
 * Ignore rules: `<Dockerfile>.dockerignore` beside the Dockerfile when it exists, else the context's
 * `.dockerignore` (BuildKit's precedence).
 */
import { createHash } from 'node:crypto'
import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises'
import path from 'node:path'
import { mapLimit } from '../../concurrency.ts'
import { createIgnoreMatcher, parseDockerignore, readDockerignore, type IgnoreMatcher } from '../../dockerfile/dockerignore.ts'
import { defaultFileHasher, type FileHasher } from '../../dockerfile/file-hasher.ts'

export interface TreeFile {
  /** Posix path inside the archive. */
  relPath: string
  absPath: string
  size: number
  /** st_mode & 0o7777. */
  mode: number
  sha256: string
  /** The bytes themselves, for a file that exists only in the archive (a rewritten Dockerfile). */
  content?: Uint8Array
}

export interface TreeDir {
  relPath: string
  mode: number
}

export interface TreeLink {
  relPath: string
  /** The link's text, as readlink gives it. */
  target: string
}

export interface ContextTree {
  files: TreeFile[]
  dirs: TreeDir[]
  links: TreeLink[]
  /** Where the Dockerfile is in the archive (what the builder is told). */
  dockerfile: string
  /** Links left out because their target leaves the context. */
  skippedLinks: TreeLink[]
}

export interface ContextTreeOptions {
  hasher?: FileHasher
  concurrency?: number
  /** Replaces the Dockerfile's content in the archive (e.g. cut after a target stage). */
  dockerfileText?: string
}

/** Sorted the same way everywhere, so two walks of the same tree list it identically. */
function byPath(a: { relPath: string }, b: { relPath: string }): number {
  return a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0
}

export async function readContextTree(contextDir: string, dockerfile: string, options: ContextTreeOptions = {}): Promise<ContextTree> {
  const root = await realpath(contextDir)
  const matcher = createIgnoreMatcher(await readIgnorePatterns(contextDir, dockerfile))
  const listed: Array<{ relPath: string; absPath: string }> = []
  const dirs: TreeDir[] = []
  const links: TreeLink[] = []
  const skippedLinks: TreeLink[] = []
  await walk('', root, matcher, { listed, dirs, links, skippedLinks })

  const dockerfileReal = await realpath(dockerfile)
  const inside = path.relative(root, dockerfileReal)
  const dockerfileInContext = !inside.startsWith('..') && !path.isAbsolute(inside)
  let dockerfileRel = dockerfileInContext ? inside.split(path.sep).join('/') : ''
  const generatedText = options.dockerfileText
  if (generatedText !== undefined || !dockerfileInContext) {
    // A Dockerfile from outside the context, or a rewritten one, travels under a name of its own.
    dockerfileRel = uniqueName('Dockerfile.sandbox-action', listed, dirs, links)
  } else if (!listed.some((file) => file.relPath === dockerfileRel)) {
    listed.push({ relPath: dockerfileRel, absPath: dockerfileReal })
  }

  const hasher = options.hasher ?? defaultFileHasher
  const files = await mapLimit(listed, options.concurrency ?? 8, async (file): Promise<TreeFile> => {
    const digest = await hasher.hash(file.absPath)
    return { relPath: file.relPath, absPath: file.absPath, size: digest.size, mode: digest.mode, sha256: digest.sha256 }
  })
  if (generatedText !== undefined) {
    files.push(generatedFile(dockerfileRel, generatedText))
  } else if (!dockerfileInContext) {
    const digest = await hasher.hash(dockerfileReal)
    files.push({ relPath: dockerfileRel, absPath: dockerfileReal, size: digest.size, mode: digest.mode, sha256: digest.sha256 })
  }
  files.sort(byPath)
  dirs.sort(byPath)
  links.sort(byPath)
  return { files, dirs, links, dockerfile: dockerfileRel, skippedLinks }
}

async function readIgnorePatterns(contextDir: string, dockerfile: string): Promise<string[]> {
  try {
    return parseDockerignore(await readFile(`${dockerfile}.dockerignore`, 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  return readDockerignore(contextDir)
}

interface WalkOutput {
  listed: Array<{ relPath: string; absPath: string }>
  dirs: TreeDir[]
  links: TreeLink[]
  skippedLinks: TreeLink[]
}

async function walk(relDir: string, absDir: string, matcher: IgnoreMatcher, out: WalkOutput): Promise<void> {
  for (const entry of await readdir(absDir, { withFileTypes: true })) {
    const relPath = relDir === '' ? entry.name : `${relDir}/${entry.name}`
    const absPath = path.join(absDir, entry.name)
    if (entry.isSymbolicLink()) {
      if (matcher.ignores(relPath, false)) continue
      const link = { relPath, target: await readlink(absPath) }
      if (staysInside(relPath, link.target)) out.links.push(link)
      else out.skippedLinks.push(link)
    } else if (entry.isDirectory()) {
      const ignored = matcher.ignores(relPath, true)
      if (ignored && !matcher.mayHaveIncludedChildren(relPath)) continue
      const dir = { relPath, mode: (await lstat(absPath)).mode & 0o7777 }
      const before = out.listed.length + out.dirs.length + out.links.length
      out.dirs.push(dir)
      await walk(relPath, absPath, matcher, out)
      // An ignored directory walked for its exceptions exists in the archive only if one matched.
      if (ignored && out.listed.length + out.dirs.length + out.links.length === before + 1) out.dirs.splice(out.dirs.indexOf(dir), 1)
    } else if (entry.isFile()) {
      if (!matcher.ignores(relPath, false)) out.listed.push({ relPath, absPath })
    }
    // Sockets, FIFOs and devices are not build context.
  }
}

/** A relative target that, resolved from the link's own directory, stays within the context. */
function staysInside(relPath: string, target: string): boolean {
  if (target === '' || path.posix.isAbsolute(target)) return false
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(relPath), target))
  return resolved !== '..' && !resolved.startsWith('../')
}

function uniqueName(base: string, ...taken: Array<ReadonlyArray<{ relPath: string }>>): string {
  const names = new Set(taken.flatMap((list) => list.map((item) => item.relPath)))
  let name = base
  for (let n = 2; names.has(name); n++) name = `${base}.${n}`
  return name
}

/** A file that exists only in the archive: its bytes are kept in memory (a Dockerfile, a few KiB). */
/** The tree of a context that is only a Dockerfile (an image made into a snapshot through the builder). */
export function dockerfileOnlyTree(text: string): ContextTree {
  return { files: [generatedFile('Dockerfile', text)], dirs: [], links: [], dockerfile: 'Dockerfile', skippedLinks: [] }
}

function generatedFile(relPath: string, text: string): TreeFile {
  const content = Buffer.from(text, 'utf8')
  return { relPath, absPath: '', size: content.byteLength, mode: 0o644, sha256: createHash('sha256').update(content).digest('hex'), content }
}
