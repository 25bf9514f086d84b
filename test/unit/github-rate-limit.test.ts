// GitHub's rate-limit answers, link headers, and the requester's refusal to follow links elsewhere.
import { getOctokit } from '@actions/github'
import { describe, expect, it } from 'vitest'
import { parseLinkHeader, nextPageUrl } from '../../src/github/link-header.ts'
import { rateLimitWait, SECONDARY_DEFAULT_WAIT_MS } from '../../src/github/rate-limit.ts'
import { GitHubRequester } from '../../src/github/requester.ts'

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0)
const PERMISSION = 'Resource not accessible by integration'

describe('rateLimitWait', () => {
  it.each([
    ['retry-after seconds (secondary)', 403, { 'retry-after': '7' }, 'You have exceeded a secondary rate limit.', { kind: 'secondary', waitMs: 7000, source: 'retry-after' }],
    ['retry-after on 429', 429, { 'retry-after': '0' }, '', { kind: 'secondary', waitMs: 0, source: 'retry-after' }],
    ['retry-after as an HTTP-date', 403, { 'retry-after': 'Sun, 22 Nov 2026 12:01:30 GMT' }, '', { kind: 'secondary', waitMs: 90_000, source: 'retry-after' }],
    ['remaining 0 until reset (primary)', 403, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(NOW / 1000 + 125) }, 'API rate limit exceeded for installation ID 1.', { kind: 'primary', waitMs: 125_000, source: 'x-ratelimit-reset' }],
    ['a reset already past', 429, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(NOW / 1000 - 5) }, '', { kind: 'primary', waitMs: 0, source: 'x-ratelimit-reset' }],
    ['retry-after wins over the reset', 403, { 'retry-after': '3', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(NOW / 1000 + 900) }, '', { kind: 'primary', waitMs: 3000, source: 'retry-after' }],
    ['a secondary limit named only in the message', 403, { 'x-ratelimit-remaining': '4000' }, 'You have exceeded a secondary rate limit.', { kind: 'secondary', waitMs: SECONDARY_DEFAULT_WAIT_MS, source: 'default' }],
    ['a bare 429', 429, {}, '', { kind: 'secondary', waitMs: SECONDARY_DEFAULT_WAIT_MS, source: 'default' }],
  ] as const)('%s', (_, status, headers, message, expected) => {
    expect(rateLimitWait(status, headers, message, NOW)).toEqual(expected)
  })

  it.each([
    ['a permission 403 with remaining budget', 403, { 'x-ratelimit-remaining': '999', 'x-ratelimit-reset': String(NOW / 1000 + 60) }, PERMISSION],
    ['a 404', 404, { 'retry-after': '5' }, 'Not Found'],
    ['a 503 with retry-after (the ladder handles 5xx)', 503, { 'retry-after': '5' }, ''],
    ['an unusable retry-after on a permission 403', 403, { 'retry-after': 'soon' }, PERMISSION],
  ] as const)('is not a rate limit: %s', (_, status, headers, message) => {
    expect(rateLimitWait(status, headers, message, NOW)).toBeUndefined()
  })
})

describe('link header', () => {
  it('reads GitHub\'s relations, including several names on one link', () => {
    const links = parseLinkHeader(
      '<https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=1>; rel="prev", ' +
        '<https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=3>; rel="next last", ' +
        '<https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=1>; rel="first"',
    )
    expect(links.get('next')).toBe('https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=3')
    expect(links.get('last')).toBe(links.get('next'))
    expect(links.get('prev')).toBe('https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=1')
  })

  it('keeps commas inside a URL and has no next without one', () => {
    expect(nextPageUrl('<https://h/x?a=1,2&page=2>; rel=next')).toBe('https://h/x?a=1,2&page=2')
    expect(nextPageUrl('<https://h/x?page=1>; rel="prev"')).toBeUndefined()
    expect(nextPageUrl(undefined)).toBeUndefined()
  })
})

describe('listing pages', () => {
  it('never follows a next link to another origin, so the token stays with the API', async () => {
    const fetched: string[] = []
    const fetch = async (url: string): Promise<Response> => {
      fetched.push(url)
      return new Response('[{"id":1}]', {
        status: 200,
        headers: { 'content-type': 'application/json', link: '<https://elsewhere.example/steal?page=2>; rel="next"' },
      })
    }
    const client = getOctokit('ghs_secret', { baseUrl: 'https://api.github.example', request: { fetch } })
    const requester = new GitHubRequester(client)
    const listing = requester.listAll({ what: 'list things', permission: 'pull-requests: write' }, () =>
      client.request('GET /repos/{owner}/{repo}/issues/{issue_number}/comments', { owner: 'a', repo: 'b', issue_number: 1 }),
    )
    await expect(listing).rejects.toThrow("Could not list things: GitHub's next-page link leads to https://elsewhere.example, not https://api.github.example; not following it.")
    expect(fetched).toEqual(['https://api.github.example/repos/a/b/issues/1/comments'])
  })
})
