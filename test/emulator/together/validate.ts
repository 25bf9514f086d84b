// Strict checks of JSON request bodies and query strings: unknown fields and wrong types are refused with a
// 400 naming the parameter, because a lenient emulator would hide a client's misspelled field.
import { badRequest } from './http-io.ts'

type Body = Record<string, unknown>

export function rejectUnknownFields(body: Body, allowed: readonly string[], where = ''): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw badRequest(where + key, `unknown field "${where}${key}"`)
  }
}

export function requiredString(body: Body, key: string, where = ''): string {
  const value = body[key]
  if (typeof value !== 'string' || value === '') throw badRequest(where + key, `"${where}${key}" is required and must be a non-empty string`)
  return value
}

export function optionalString(body: Body, key: string, where = ''): string | undefined {
  const value = body[key]
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw badRequest(where + key, `"${where}${key}" must be a string`)
  return value
}

export function optionalBoolean(body: Body, key: string, where = ''): boolean | undefined {
  const value = body[key]
  if (value === undefined) return undefined
  if (typeof value !== 'boolean') throw badRequest(where + key, `"${where}${key}" must be a boolean`)
  return value
}

export function optionalInteger(body: Body, key: string, min: number, max: number, where = ''): number | undefined {
  const value = body[key]
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw badRequest(where + key, `"${where}${key}" must be an integer between ${min} and ${max}`)
  }
  return value
}

export function optionalNumber(body: Body, key: string, min: number, max: number, where = ''): number | undefined {
  const value = body[key]
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw badRequest(where + key, `"${where}${key}" must be a number between ${min} and ${max}`)
  }
  return value
}

export function requiredStringArray(body: Body, key: string, where = ''): string[] {
  const value = body[key]
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
    throw badRequest(where + key, `"${where}${key}" is required and must be an array of strings`)
  }
  return value as string[]
}

export function optionalStringArray(body: Body, key: string, where = ''): string[] | undefined {
  if (body[key] === undefined) return undefined
  return requiredStringArray(body, key, where)
}

export function optionalObject(body: Body, key: string, where = ''): Body | undefined {
  const value = body[key]
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest(where + key, `"${where}${key}" must be an object`)
  }
  return value as Body
}

/** Strings to strings, e.g. exec `env`. */
export function optionalStringMap(body: Body, key: string, where = ''): Record<string, string> | undefined {
  const value = optionalObject(body, key, where)
  if (value === undefined) return undefined
  for (const [name, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw badRequest(`${where}${key}.${name}`, `"${where}${key}.${name}" must be a string`)
  }
  return value as Record<string, string>
}

/** Documented on create-sandbox: at most 59 letters, digits, `-`, `_`, `.`, starting and ending alphanumeric. */
const TAG_KEY = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,57}[A-Za-z0-9])?$/

export function checkTagKey(key: string, parameter: string): void {
  if (!TAG_KEY.test(key)) {
    throw badRequest(parameter, `tag key "${key}" must be at most 59 letters, digits, "-", "_", "." and start and end with a letter or digit`)
  }
}

export function optionalTags(body: Body, key: string, where = ''): Record<string, string> | undefined {
  const tags = optionalStringMap(body, key, where)
  for (const name of Object.keys(tags ?? {})) checkTagKey(name, `${where}${key}.${name}`)
  return tags
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid(value: string): boolean {
  return UUID.test(value)
}

export function requireUuid(value: string, parameter: string): string {
  if (!isUuid(value)) throw badRequest(parameter, `"${parameter}" must be a UUID`)
  return value.toLowerCase()
}

/** Query parameters: refuses any name not in `allowed` (names ending in `[…]` are matched by their prefix `name[`). */
export function rejectUnknownQuery(query: URLSearchParams, allowed: readonly string[]): void {
  for (const name of query.keys()) {
    const ok = allowed.some((allow) => (allow.endsWith('[') ? name.startsWith(allow) && name.endsWith(']') : name === allow))
    if (!ok) throw badRequest(name, `unknown query parameter "${name}"`)
  }
}

/** `tags[k]=v` (OpenAPI deepObject, explode): every pair given. */
export function deepObjectTags(query: URLSearchParams): Record<string, string> {
  const tags: Record<string, string> = {}
  for (const [name, value] of query) {
    const match = /^tags\[(.*)\]$/.exec(name)
    if (!match) continue
    const key = match[1] as string
    checkTagKey(key, name)
    if (key in tags) throw badRequest(name, `"${name}" is given twice`)
    tags[key] = value
  }
  return tags
}

export function queryBoolean(query: URLSearchParams, name: string, fallback: boolean): boolean {
  const value = query.get(name)
  if (value === null) return fallback
  if (value === 'true') return true
  if (value === 'false') return false
  throw badRequest(name, `"${name}" must be true or false`)
}

export function queryInteger(query: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const value = query.get(name)
  if (value === null) return undefined
  if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw badRequest(name, `"${name}" must be an integer between ${min} and ${max}`)
  }
  return Number(value)
}

/** `ids[]=a&ids[]=b` (form, explode): required, at most 100, no duplicates, UUIDs. */
export function batchIds(query: URLSearchParams): string[] {
  const ids = query.getAll('ids[]')
  if (ids.length === 0) throw badRequest('ids[]', '"ids[]" is required')
  if (ids.length > 100) throw badRequest('ids[]', 'at most 100 ids')
  const seen = new Set<string>()
  for (const id of ids) {
    requireUuid(id, 'ids[]')
    if (seen.has(id.toLowerCase())) throw badRequest('ids[]', `duplicate id ${id}`)
    seen.add(id.toLowerCase())
  }
  return [...seen]
}
