/**
 * Cache keys for build steps, chained like Docker's layer cache: a step's key covers the previous
 * key, the build state it runs in, what it runs, and the content of the files it places — so an edit
 * at step N changes the keys of N and later, never earlier ones. File timestamps are not part of it;
 * content digests are. Every digest is sha256 over a canonical JSON value (arrays and sorted-key
 * objects), so no two different inputs can serialise alike.
 */
import { createHash } from 'node:crypto'
import type { BuildStep, CopyEntry } from './plan.ts'
import type { FromSource } from '../../../dockerfile/stages.ts'

/** Bumped whenever the meaning of a key changes, so old cache entries stop matching. */
const NAMESPACE = 'sandbox-action/build/v2'

export interface FromKeyInput {
  /** Provider name, e.g. "contree". */
  provider: string
  /** API endpoint (base URL). */
  endpoint: string
  /** Project / account scope on the service; "" when there is none. */
  project: string
  /** Resolved base image identity: image UUID or registry manifest digest — never a mutable tag. */
  baseImage: string
}

export function fromKey(input: FromKeyInput): string {
  return digest([NAMESPACE, 'from', input.provider, input.endpoint, input.project, input.baseImage])
}

/** What keys of other things a step's key depends on, known before the step runs. */
export interface KeyInputs {
  /** A URL file's url → its downloaded content's sha256 (known after the download). */
  urlDigests?: Readonly<Record<string, string>>
  /** Result key of each stage (by index) that a COPY --from or bind mount reads. */
  stageKeys?: ReadonlyMap<number, string>
  /** Identity (manifest digest or image id) of each image a COPY --from or bind mount reads, by reference. */
  imageIds?: ReadonlyMap<string, string>
}

/**
 * Key of one step: the state it runs in, what it runs, and every file operation before it — context
 * files by content digest, heredocs by digest, URL files by downloaded digest, files of another
 * stage by that stage's result key (so they need not be fetched to know the key). Secret values are
 * never part of a key (BuildKit's rule): only their ids and where they go.
 */
export function stepKey(previousKey: string, step: BuildStep, inputs: KeyInputs = {}): string {
  const state = {
    env: sortedEntries(step.imageEnv),
    args: sortedEntries(step.buildArgs),
    cwd: step.cwd,
    user: step.user,
    shell: step.shell,
  }
  const source = (from: FromSource): unknown =>
    from.kind === 'stage' ? ['stage', inputs.stageKeys?.get(from.index) ?? null] : ['image', from.ref, inputs.imageIds?.get(from.ref) ?? null]
  const entry = (e: CopyEntry): unknown => [
    e.path,
    e.type,
    e.mode,
    e.target ?? null,
    e.intoDirName ?? null,
    e.content === undefined
      ? null
      : e.content.kind === 'context'
        ? ['context', e.content.file.sha256]
        : e.content.kind === 'inline'
          ? ['inline', e.content.sha256]
          : ['url', e.content.url, inputs.urlDigests?.[e.content.url] ?? e.content.checksum ?? null],
  ]
  const ops = step.ops.map((op) => {
    switch (op.kind) {
      case 'mkdir':
        return ['mkdir', op.path, op.user]
      case 'copy':
        return ['copy', op.dest, op.chown, op.entries.map(entry)]
      case 'copy-from':
        return ['copy-from', source(op.from), op.paths, op.dest, op.destIsDir, op.chown, op.chmod]
      case 'unpack':
        return ['unpack', op.archive.sha256, op.dest, op.chown, op.chmod]
    }
  })
  const mounts = step.mounts.map((mount) =>
    mount.type === 'bind' ? { ...mount, from: mount.from.kind === 'stage' || mount.from.kind === 'image' ? source(mount.from) : mount.from } : mount,
  )
  const scripts = step.scripts.map((script) => [script.path, script.sha256])
  return digest([NAMESPACE, 'step', previousKey, step.kind, state, step.argv ?? null, ops, mounts, scripts, step.network])
}

/** Keys of all steps of a stage, chained from its base key. */
export function stepKeys(baseKey: string, steps: readonly BuildStep[], inputs: KeyInputs = {}): string[] {
  const keys: string[] = []
  let previous = baseKey
  for (const step of steps) {
    previous = stepKey(previous, step, inputs)
    keys.push(previous)
  }
  return keys
}

/** One digest for the whole build (base key + every step key), for an exact @actions/cache key. */
export function buildCacheKey(baseKey: string, keys: readonly string[]): string {
  return digest([NAMESPACE, 'build', baseKey, keys])
}

/** Key of a stage's result when it has no steps of its own: its base, with the config it ends with. */
export function configOnlyKey(baseKey: string, config: unknown): string {
  return digest([NAMESPACE, 'config', baseKey, config])
}

/** JSON with object keys sorted at every level, so equal values always serialise identically. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value))
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort(compare)) out[key] = sortKeys((value as Record<string, unknown>)[key])
    return out
  }
  return value
}

function sortedEntries(record: Readonly<Record<string, string>>): [string, string][] {
  return Object.entries(record).sort(([a], [b]) => compare(a, b))
}

function digest(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex')
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
