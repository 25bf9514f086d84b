/**
 * The digest of a remote build: everything that decides what the builder produces. The Dockerfile
 * text, the build args, the target, the architecture, every file of the context (path, mode,
 * content), its directories and links, and the manifest digest of every registry image the
 * Dockerfile starts from or copies from, so that a new upstream base rebuilds while an unchanged one
 * costs one manifest request per image.
 *
 * A base that cannot be resolved (a private registry, a variable only a stage defines, a Dockerfile
 * the local parser cannot read) makes the build undigestable: it is then always built, never reused.
 */
import { createHash, type Hash } from 'node:crypto'
import { parseDockerfile } from '../../dockerfile/dockerfile.ts'
import { parseArgDeclarations } from '../../dockerfile/name-values.ts'
import { processWord, splitWords } from '../../dockerfile/substitute.ts'
import { errorMessage } from '../../errors.ts'
import { formatReference, parseReference } from '../../image/reference.ts'
import { resolveManifestDigest, type RegistryTransport } from '../../image/resolve-digest.ts'
import type { ContextTree } from './context-tree.ts'
import type { Architecture } from './wire.ts'

const DIGEST_VERSION = 'together-build-v1'

/** Registry images a Dockerfile reads, or why they cannot be known. */
export type BaseReferences = { refs: string[] } | { unknown: string }

/**
 * The registry references of every `FROM` (stages named by an earlier `AS` and `scratch` excluded)
 * and every `COPY --from=<image>`, with global ARGs (defaults, overridden by build args) substituted.
 */
export function findBaseReferences(dockerfileText: string, buildArgs: Record<string, string>): BaseReferences {
  let parsed
  try {
    parsed = parseDockerfile(dockerfileText)
  } catch (error) {
    return { unknown: `the Dockerfile could not be read locally (${errorMessage(error)})` }
  }
  const { escapeChar } = parsed
  const globals: Record<string, string> = {}
  const stages = new Set<string>()
  const refs = new Set<string>()
  let stageCount = 0
  try {
    for (const instruction of parsed.instructions) {
      if (instruction.keyword === 'ARG' && stageCount === 0) {
        for (const declaration of parseArgDeclarations(instruction.args, escapeChar)) {
          const name = processWord(declaration.name, globals, escapeChar)
          const value = Object.hasOwn(buildArgs, name) ? buildArgs[name] : declaration.value === undefined ? undefined : processWord(declaration.value, globals, escapeChar)
          if (value !== undefined) globals[name] = value
        }
      } else if (instruction.keyword === 'FROM') {
        const words = splitWords(instruction.args, escapeChar)
        const ref = processWord(words[0] ?? '', globals, escapeChar)
        if (ref === '') return { unknown: `FROM ${words[0] ?? ''} names no image once its variables are substituted` }
        if (ref.toLowerCase() !== 'scratch' && !stages.has(ref.toLowerCase())) refs.add(canonical(ref))
        if (words[1]?.toLowerCase() === 'as' && words[2] !== undefined) stages.add(words[2].toLowerCase())
        stageCount++
      } else if (instruction.keyword === 'COPY' && instruction.flags.from !== undefined) {
        const from = processWord(instruction.flags.from, globals, escapeChar)
        if (/^\d+$/.test(from) || stages.has(from.toLowerCase())) continue
        refs.add(canonical(from))
      }
    }
  } catch (error) {
    return { unknown: `a base image of the Dockerfile could not be named (${errorMessage(error)})` }
  }
  return { refs: [...refs].sort() }
}

function canonical(ref: string): string {
  return formatReference(parseReference(ref))
}

/** Each reference's manifest digest, or the first reason one could not be had. */
export async function resolveBaseDigests(
  refs: readonly string[],
  opts: { transport: RegistryTransport; signal?: AbortSignal },
): Promise<{ digests: Array<[string, string]> } | { unknown: string }> {
  const digests: Array<[string, string]> = []
  for (const ref of refs) {
    try {
      digests.push([ref, await resolveManifestDigest(parseReference(ref), { transport: opts.transport, ...(opts.signal ? { signal: opts.signal } : {}) })])
    } catch (error) {
      if (opts.signal?.aborted) throw error
      return { unknown: `${ref} could not be resolved to a digest (${errorMessage(error)})` }
    }
  }
  return { digests }
}

export interface BuildDigestInput {
  tree: Pick<ContextTree, 'files' | 'dirs' | 'links' | 'dockerfile'>
  dockerfileText: string
  buildArgs: Record<string, string>
  target?: string
  architecture: Architecture
  baseDigests: ReadonlyArray<[string, string]>
}

export function buildDigest(input: BuildDigestInput): string {
  const hash = createHash('sha256')
  const field = fieldWriter(hash)
  field(DIGEST_VERSION)
  field(input.architecture)
  field(input.dockerfileText)
  field(input.tree.dockerfile)
  field(input.target ?? '')
  for (const [name, value] of Object.entries(input.buildArgs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) field(`arg ${name}`, value)
  for (const [ref, digest] of input.baseDigests) field(`base ${ref}`, digest)
  for (const dir of input.tree.dirs) field(`dir ${dir.relPath}`, dir.mode.toString(8))
  for (const link of input.tree.links) field(`link ${link.relPath}`, link.target)
  for (const file of input.tree.files) field(`file ${file.relPath}`, file.mode.toString(8), file.sha256)
  return hash.digest('hex')
}

/** The digest of a registry image made into a snapshot: its manifest, for one architecture. */
export function imageDigest(reference: string, manifestDigest: string, architecture: Architecture): string {
  const hash = createHash('sha256')
  const field = fieldWriter(hash)
  field(`${DIGEST_VERSION} image`)
  field(architecture)
  field(canonical(reference))
  field(manifestDigest)
  return hash.digest('hex')
}

/** Length-prefixed fields: no two different inputs hash the same text. */
function fieldWriter(hash: Hash): (...parts: string[]) => void {
  return (...parts) => {
    for (const part of parts) hash.update(`${Buffer.byteLength(part)}:${part};`)
    hash.update('\n')
  }
}
