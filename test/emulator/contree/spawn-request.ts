// Turns a POST /v1/instances body into a SpawnSpec, with the server defaults of protocol §2.6.
import type { FileStore } from './file-store.ts'
import { HttpError } from './http-io.ts'
import type { SpawnFile, SpawnSpec } from './instance-runner.ts'
import { decodeStream } from './stream-repr.ts'

export const DEFAULT_TIMEOUT_S = 60
export const MAX_TIMEOUT_S = 3600
export const DEFAULT_TRUNCATE_AT = 1048576

function optional<T>(body: Record<string, unknown>, key: string, check: (v: unknown) => v is T, what: string): T | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  if (!check(value)) throw new HttpError(400, `${key} must be ${what}`)
  return value
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isBool = (v: unknown): v is boolean => typeof v === 'boolean'
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((item) => typeof item === 'string')

/** Octal mode strings: "0644" is canonical, "0o644" (Python oct()) is tolerated, numbers pass through. */
export function parseMode(value: unknown, path: string): number | null {
  if (value === undefined || value === null || value === '') return null
  if (typeof value === 'number' && Number.isInteger(value)) return value
  if (typeof value === 'string' && /^(0o)?[0-7]{1,6}$/i.test(value)) return Number.parseInt(value.replace(/^0o/i, ''), 8)
  throw new HttpError(400, `files[${path}].mode must be an octal string like "0644"`)
}

export function parseSpawnRequest(body: Record<string, unknown>, files: FileStore): SpawnSpec {
  const command = body.command
  if (typeof command !== 'string' || command === '') throw new HttpError(400, 'command is required')
  const cwd = optional(body, 'cwd', isString, 'a string') || '/'
  if (!cwd.startsWith('/')) throw new HttpError(400, 'cwd must be an absolute path')
  const timeout = optional(body, 'timeout', isNumber, 'a number of seconds') ?? DEFAULT_TIMEOUT_S
  if (timeout <= 0) throw new HttpError(400, 'timeout must be positive')
  const truncateAt = optional(body, 'truncate_output_at', isNumber, 'a number of bytes') ?? DEFAULT_TRUNCATE_AT
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(optional(body, 'env', isObject, 'an object') ?? {})) {
    env[key] = String(value)
  }
  const spawnFiles: SpawnFile[] = []
  for (const [path, raw] of Object.entries(optional(body, 'files', isObject, 'an object') ?? {})) {
    if (!path.startsWith('/')) throw new HttpError(400, `files key must be an absolute path: ${path}`)
    if (!isObject(raw)) throw new HttpError(400, `files[${path}] must be an object`)
    const reference = typeof raw.uuid === 'string' ? raw.uuid : typeof raw.sha256 === 'string' ? raw.sha256 : ''
    const file = files.lookup(reference)
    if (!file) throw new HttpError(404, `file ${reference || '(missing uuid)'} not found for ${path}`)
    spawnFiles.push({
      file,
      path,
      mode: parseMode(raw.mode, path),
      uid: typeof raw.uid === 'number' ? raw.uid : 0,
      gid: typeof raw.gid === 'number' ? raw.gid : 0,
    })
  }
  const stdin = optional(body, 'stdin', isObject, 'an object')
  return {
    command,
    args: optional(body, 'args', isStringArray, 'an array of strings') ?? [],
    shell: optional(body, 'shell', isBool, 'a boolean') ?? false,
    env,
    cwd,
    timeout: Math.min(timeout, MAX_TIMEOUT_S),
    disposable: optional(body, 'disposable', isBool, 'a boolean') ?? false,
    truncateAt: Math.max(0, Math.floor(truncateAt)),
    files: spawnFiles,
    uid: optional(body, 'uid', isNumber, 'an integer') ?? 0,
    gid: optional(body, 'gid', isNumber, 'an integer') ?? 0,
    stdin: stdin ? decodeStream(stdin) : null,
  }
}
