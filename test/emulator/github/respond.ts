// Answers shaped like GitHub's: JSON with `content-type: application/json; charset=utf-8`, error
// bodies `{message, documentation_url, status}` (status as a string), and list pagination with a
// `link` header in GitHub's order (prev, next, last, first) pointing at `/repositories/{id}/…`.
import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'

export const DOCS = 'https://docs.github.com/rest'
export const DEFAULT_PER_PAGE = 30
export const MAX_PER_PAGE = 100

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(value)
  for (const [name, v] of Object.entries(headers)) res.setHeader(name, v)
  res.setHeader('content-type', 'application/json; charset=utf-8')
  res.setHeader('content-length', String(Buffer.byteLength(text)))
  res.writeHead(status)
  res.end(text)
}

export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204)
  res.end()
}

export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  documentationUrl: string = DOCS,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): void {
  sendJson(res, status, { message, ...extra, documentation_url: documentationUrl, status: String(status) }, headers)
}

/** Headers GitHub sends on every answer. */
export function commonHeaders(res: ServerResponse): void {
  res.setHeader('x-github-request-id', randomUUID().toUpperCase().slice(0, 23))
  res.setHeader('x-github-media-type', 'github.v3; format=json')
  res.setHeader('x-github-api-version-selected', '2022-11-28')
}

export interface Page<T> {
  items: T[]
  /** The `link` header, absent when everything fits on page 1. */
  link?: string
}

function positiveInt(value: string | null): number | undefined {
  if (value === null || !/^\d+$/.test(value)) return undefined
  const n = Number(value)
  return n >= 1 ? n : undefined
}

/**
 * One page of `all` for `per_page` (default 30, at most 100; GitHub caps larger values rather than
 * refusing them) and `page` (default 1). Links keep the request's other query parameters in their
 * order and put `page` last, on the `/repositories/{id}` form of the path, as GitHub does.
 */
export function paginate<T>(all: readonly T[], query: URLSearchParams, linkBase: string): Page<T> {
  const perPage = Math.min(MAX_PER_PAGE, positiveInt(query.get('per_page')) ?? DEFAULT_PER_PAGE)
  const page = positiveInt(query.get('page')) ?? 1
  const items = all.slice((page - 1) * perPage, page * perPage)
  const last = Math.max(1, Math.ceil(all.length / perPage))
  const kept = [...query.entries()].filter(([name]) => name !== 'page')
  const url = (n: number): string => {
    const params = new URLSearchParams([...kept, ['page', String(n)]])
    return `${linkBase}?${params.toString()}`
  }
  const rels: string[] = []
  if (page > 1) rels.push(`<${url(page - 1)}>; rel="prev"`)
  if (page < last) rels.push(`<${url(page + 1)}>; rel="next"`, `<${url(last)}>; rel="last"`)
  if (page > 1) rels.push(`<${url(1)}>; rel="first"`)
  return rels.length > 0 ? { items, link: rels.join(', ') } : { items }
}
