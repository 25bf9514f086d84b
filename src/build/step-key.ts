/**
 * Cache keys for build steps, chained like Docker's layer cache: a step's key covers the previous
 * key, the build state it runs in, what it runs, and the content of the files it places — so an edit
 * at step N changes the keys of N and later, never earlier ones. File timestamps are not part of it;
 * content digests are. Every digest is sha256 over a canonical JSON value (arrays and sorted-key
 * objects), so no two different inputs can serialise alike.
 */
import { createHash } from 'node:crypto'
import type { BuildStep } from './plan.ts'

/** Bumped whenever the meaning of a key changes, so old cache entries stop matching. */
const NAMESPACE = 'sandbox-action/build/v1'

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

/**
 * Key of one step. `urlDigests` maps a URL file's url to its downloaded content's sha256, known only
 * after the download; without it the key covers the URL alone (fine for immutable URLs).
 */
export function stepKey(previousKey: string, step: BuildStep, urlDigests: Readonly<Record<string, string>> = {}): string {
  const state = {
    env: sortedEntries(step.imageEnv),
    args: sortedEntries(step.buildArgs),
    cwd: step.cwd,
    user: step.user ?? null,
    shell: step.shell,
  }
  const run = step.run ? { command: step.run.command, args: step.run.args ?? [], shell: step.run.shell } : null
  const files = step.files
    .map((file) => ({ path: file.path, sha256: file.file.sha256, mode: file.mode, uid: file.uid, gid: file.gid }))
    .sort((a, b) => compare(a.path, b.path))
  const urlFiles = step.urlFiles
    .map((file) => ({
      url: file.url,
      dest: file.dest,
      mode: file.mode,
      uid: file.uid,
      gid: file.gid,
      sha256: Object.hasOwn(urlDigests, file.url) ? urlDigests[file.url] : (file.checksum ?? null),
    }))
    .sort((a, b) => compare(a.dest, b.dest))
  return digest([NAMESPACE, 'step', previousKey, step.kind, state, run, files, urlFiles])
}

/** Keys of all steps, chained from the FROM key. */
export function stepKeys(baseKey: string, steps: readonly BuildStep[], urlDigests: Readonly<Record<string, string>> = {}): string[] {
  const keys: string[] = []
  let previous = baseKey
  for (const step of steps) {
    previous = stepKey(previous, step, urlDigests)
    keys.push(previous)
  }
  return keys
}

/** One digest for the whole build (base key + every step key), for an exact @actions/cache key. */
export function buildCacheKey(baseKey: string, keys: readonly string[]): string {
  return digest([NAMESPACE, 'build', baseKey, keys])
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
