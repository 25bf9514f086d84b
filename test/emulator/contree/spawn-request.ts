// Turns a POST /v1/instances body into a SpawnSpec, with the server defaults of protocol §2.6.
// Strict where the protocol notes are silent: an unknown field (at the top level, in a FileSpec, in
// stdin, networking or resources_limits) is refused with 400 naming it, and a FileSpec names its
// upload by the uuid POST /v1/files returned, nothing else. Explicit nulls mean "server default".
import type { FileStore } from './file-store.ts'
import { HttpError } from './http-io.ts'
import type { SpawnFile, SpawnSpec } from './instance-runner.ts'
import { decodeStream } from './stream-repr.ts'

export const DEFAULT_TIMEOUT_S = 60
export const MAX_TIMEOUT_S = 3600
export const DEFAULT_TRUNCATE_AT = 1048576
/** Every id the sandbox's user namespace maps; higher ids cannot be set inside it. */
export const MAX_ID = 65535
const DEFAULT_FILE_MODE = 0o644

const SPAWN_FIELDS = new Set([
  'command',
  'image',
  'shell',
  'args',
  'env',
  'preserve_env',
  'cwd',
  'uid',
  'gid',
  'hostname',
  'disposable',
  'timeout',
  'truncate_output_at',
  'stdin',
  'files',
  'resources_limits',
  'networking',
])
const FILE_SPEC_FIELDS = new Set(['uuid', 'uid', 'gid', 'mode'])
const STDIN_FIELDS = new Set(['value', 'encoding', 'close'])
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const SHA256 = /^(sha256:)?[0-9a-f]{64}$/i

const isString = (v: unknown): v is string => typeof v === 'string'
const isBool = (v: unknown): v is boolean => typeof v === 'boolean'
const isInteger = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v)
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((item) => typeof item === 'string')

/** Field names are shown as the client wrote them: `files["/app/x"].mode`. */
function optional<T>(body: Record<string, unknown>, key: string, check: (v: unknown) => v is T, what: string, label = key): T | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  if (!check(value)) throw new HttpError(400, `${label} must be ${what}`)
  return value
}

function refuseUnknown(body: Record<string, unknown>, known: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(body)) {
    if (!known.has(key)) throw new HttpError(400, `${where}unknown field "${key}"`)
  }
}

function id(body: Record<string, unknown>, key: string, label: string): number {
  const value = optional(body, key, isInteger, `an integer from 0 to ${MAX_ID}`, label) ?? 0
  if (value < 0 || value > MAX_ID) throw new HttpError(400, `${label} must be an integer from 0 to ${MAX_ID}`)
  return value
}

/** Octal mode strings: "0644" is canonical, "0o644" (Python oct()) is tolerated (protocol §2.6). */
export function parseMode(value: unknown, label: string): number | null {
  if (value === undefined || value === null) return null
  if (typeof value === 'string' && /^(0o)?[0-7]{1,5}$/i.test(value)) {
    const mode = Number.parseInt(value.replace(/^0o/i, ''), 8)
    if (mode <= 0o7777) return mode
  }
  throw new HttpError(400, `${label} must be an octal string like "0644"`)
}

function parseFiles(raw: Record<string, unknown>, files: FileStore): SpawnFile[] {
  const spawnFiles: SpawnFile[] = []
  for (const [path, spec] of Object.entries(raw)) {
    const label = `files[${JSON.stringify(path)}]`
    if (!path.startsWith('/')) throw new HttpError(400, `${label}: the key must be an absolute path`)
    if (path.split('/').includes('..')) throw new HttpError(400, `${label}: the path must not contain ".."`)
    if (path.endsWith('/')) throw new HttpError(400, `${label}: the path must name a file, not a directory`)
    if (!isObject(spec)) throw new HttpError(400, `${label} must be an object`)
    refuseUnknown(spec, FILE_SPEC_FIELDS, `${label}: `)
    const reference = spec.uuid
    if (typeof reference !== 'string' || reference === '') throw new HttpError(400, `${label}.uuid is required (the uuid POST /v1/files returned)`)
    if (!UUID.test(reference)) {
      const hint = SHA256.test(reference) ? ' (that is a sha256; files are placed by upload uuid)' : ''
      throw new HttpError(400, `${label}.uuid must be a file uuid returned by POST /v1/files${hint}`)
    }
    const file = files.byId(reference)
    if (!file) throw new HttpError(404, `file ${reference} not found for ${path}`)
    spawnFiles.push({
      file,
      path,
      mode: parseMode(spec.mode, `${label}.mode`) ?? DEFAULT_FILE_MODE,
      uid: id(spec, 'uid', `${label}.uid`),
      gid: id(spec, 'gid', `${label}.gid`),
    })
  }
  return spawnFiles
}

function parseStdin(raw: Record<string, unknown>): Buffer {
  refuseUnknown(raw, STDIN_FIELDS, 'stdin: ')
  if (typeof raw.value !== 'string') throw new HttpError(400, 'stdin.value must be a string')
  const encoding = optional(raw, 'encoding', isString, '"ascii" or "base64"', 'stdin.encoding')
  if (encoding !== undefined && encoding !== 'ascii' && encoding !== 'base64') throw new HttpError(400, 'stdin.encoding must be "ascii" or "base64"')
  optional(raw, 'close', isBool, 'a boolean', 'stdin.close')
  return decodeStream(raw)
}

function checkNested(body: Record<string, unknown>, key: string, fields: Record<string, (v: unknown) => boolean>, what: Record<string, string>): void {
  const raw = optional(body, key, isObject, 'an object')
  if (!raw) return
  refuseUnknown(raw, new Set(Object.keys(fields)), `${key}: `)
  for (const [field, check] of Object.entries(fields)) {
    const value = raw[field]
    if (value !== undefined && value !== null && !check(value)) throw new HttpError(400, `${key}.${field} must be ${what[field]}`)
  }
}

export function parseSpawnRequest(body: Record<string, unknown>, files: FileStore): SpawnSpec {
  refuseUnknown(body, SPAWN_FIELDS, '')
  const command = body.command
  if (typeof command !== 'string' || command === '') throw new HttpError(400, 'command is required')
  const cwd = optional(body, 'cwd', isString, 'an absolute path') ?? '/'
  if (!cwd.startsWith('/')) throw new HttpError(400, 'cwd must be an absolute path')
  const timeout = optional(body, 'timeout', isInteger, 'a whole number of seconds') ?? DEFAULT_TIMEOUT_S
  if (timeout <= 0) throw new HttpError(400, 'timeout must be positive')
  const truncateAt = optional(body, 'truncate_output_at', isInteger, 'a whole number of bytes') ?? DEFAULT_TRUNCATE_AT
  if (truncateAt < 0) throw new HttpError(400, 'truncate_output_at must not be negative')
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(optional(body, 'env', isObject, 'an object of strings') ?? {})) {
    if (typeof value !== 'string') throw new HttpError(400, `env[${JSON.stringify(key)}] must be a string`)
    if (key === '' || key.includes('=') || key.includes('\0')) throw new HttpError(400, `env: ${JSON.stringify(key)} is not a variable name`)
    env[key] = value
  }
  optional(body, 'preserve_env', isBool, 'a boolean')
  optional(body, 'hostname', isString, 'a string')
  checkNested(body, 'resources_limits', { max_layer_bytes: isInteger }, { max_layer_bytes: 'an integer' })
  checkNested(body, 'networking', { enabled: isBool }, { enabled: 'a boolean' })
  const stdin = optional(body, 'stdin', isObject, 'an object')
  return {
    command,
    args: optional(body, 'args', isStringArray, 'an array of strings') ?? [],
    shell: optional(body, 'shell', isBool, 'a boolean') ?? false,
    env,
    cwd,
    timeout: Math.min(timeout, MAX_TIMEOUT_S),
    disposable: optional(body, 'disposable', isBool, 'a boolean') ?? false,
    truncateAt,
    files: parseFiles(optional(body, 'files', isObject, 'an object') ?? {}, files),
    uid: id(body, 'uid', 'uid'),
    gid: id(body, 'gid', 'gid'),
    stdin: stdin ? parseStdin(stdin) : null,
  }
}
