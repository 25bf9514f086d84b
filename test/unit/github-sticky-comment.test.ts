// The sticky PR comment against the GitHub emulator, through the real Octokit of @actions/github.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { GitHubPermissionError, GitHubRateLimitError } from '../../src/github/errors.ts'
import type { PullRequestRef } from '../../src/github/refs.ts'
import { stickyMarker, upsertStickyComment } from '../../src/github/sticky-comment.ts'
import { startGitHubEmulator, type GitHubEmulator } from '../emulator/github/server.ts'
import { fakeTime, octokitFor } from '../emulator/github/test-kit.ts'
import { READ_ONLY, type TokenGrant } from '../emulator/github/types.ts'
import { eventually } from '../helpers/wait.ts'

const PR: PullRequestRef = { owner: 'acme', repo: 'shop', number: 7 }
const MARKER = stickyMarker('web')
const TOKEN = 'ghs_writeTokenForTests0001'

let emulator: GitHubEmulator | undefined
afterEach(async () => {
  await emulator?.close()
  emulator = undefined
})

const execFileAsync = promisify(execFile)

async function start(options: { tokens?: Record<string, TokenGrant>; now?: () => number; pathPrefix?: string } = {}): Promise<GitHubEmulator> {
  emulator = await startGitHubEmulator({
    tokens: options.tokens ?? { [TOKEN]: {} },
    repos: [{ owner: 'acme', name: 'shop', pulls: [{ number: 7, headRef: 'feature', headSha: 'c'.repeat(40) }] }],
    ...(options.now ? { now: options.now } : {}),
    ...(options.pathPrefix ? { pathPrefix: options.pathPrefix } : {}),
  })
  return emulator
}

function marked(em: GitHubEmulator) {
  return em.comments('acme', 'shop', 7).filter((c) => c.body.startsWith(MARKER))
}

describe('sticky comment: one comment, updated in place', () => {
  it('creates, updates in place, then rewrites as removed; never more than one', async () => {
    const em = await start()
    const client = octokitFor(em, TOKEN)

    const created = await upsertStickyComment(client, PR, 'web', 'building')
    expect(created).toMatchObject({ action: 'created', duplicatesRemoved: 0 })
    expect(marked(em)).toHaveLength(1)

    const updated = await upsertStickyComment(client, PR, 'web', 'ready')
    expect(updated).toMatchObject({ action: 'updated' })
    const removed = await upsertStickyComment(client, PR, 'web', 'removed', { createIfMissing: false })
    expect(removed).toMatchObject({ action: 'updated' })

    const [only, ...rest] = marked(em)
    expect(rest).toEqual([])
    expect(only?.body).toBe(`${MARKER}\nremoved`)
    expect(created.action !== 'absent' && only?.id).toBe(created.action !== 'absent' && created.commentId)
    expect(created.action !== 'absent' && created.htmlUrl).toBe(`https://github.com/acme/shop/pull/7#issuecomment-${only?.id}`)
    // Update and removal are in place: a listing and a PATCH each, no POST.
    expect(em.requests.slice(3).map((r) => r.method)).toEqual(['GET', 'PATCH', 'GET', 'PATCH'])
  })

  it('sends nothing when the body has not changed', async () => {
    const em = await start()
    const client = octokitFor(em, TOKEN)
    await upsertStickyComment(client, PR, 'web', 'same')
    const before = em.requests.length
    expect(await upsertStickyComment(client, PR, 'web', 'same')).toMatchObject({ action: 'unchanged' })
    expect(em.requests.slice(before).map((r) => r.method)).toEqual(['GET'])
  })

  it('keeps previews apart by name and ignores a marker that does not open the body', async () => {
    const em = await start()
    em.seedComments('acme', 'shop', 7, [`quoting: ${MARKER}`, `${stickyMarker('web-2')}\nother preview`])
    const client = octokitFor(em, TOKEN)
    await upsertStickyComment(client, PR, 'web', 'mine')
    expect(em.comments('acme', 'shop', 7).map((c) => c.body)).toEqual([
      `quoting: ${MARKER}`,
      `${stickyMarker('web-2')}\nother preview`,
      `${MARKER}\nmine`,
    ])
  })

  it('teardown of a preview that never had a comment writes nothing', async () => {
    const em = await start()
    const result = await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'removed', { createIfMissing: false })
    expect(result).toEqual({ action: 'absent', duplicatesRemoved: 0 })
    expect(em.requests.map((r) => r.method)).toEqual(['GET'])
  })

  it('refuses a preview name that could break or alias the marker', () => {
    for (const name of ['', 'a -->', 'a b', '-x', 'x'.repeat(64), 'ä']) {
      expect(() => stickyMarker(name), name).toThrow(/not usable in a comment marker/)
    }
    expect(stickyMarker('pr-7.web_1')).toBe('<!-- sandbox-preview:pr-7.web_1 -->')
  })
})

describe('sticky comment: long conversations', () => {
  it('finds its comment after 150 others (two pages of 100) and updates it in place', async () => {
    const em = await start()
    em.seedComments('acme', 'shop', 7, Array.from({ length: 150 }, (_, i) => `chatter ${i}`))
    const client = octokitFor(em, TOKEN)
    await upsertStickyComment(client, PR, 'web', 'v1')
    const before = em.requests.length
    await upsertStickyComment(client, PR, 'web', 'v2')

    const run = em.requests.slice(before)
    expect(run.map((r) => `${r.method} ${r.query['page'] ?? '1'}`)).toEqual(['GET 1', 'GET 2', 'PATCH 1'])
    expect(run[0]?.query['per_page']).toBe('100')
    expect(marked(em).map((c) => c.body)).toEqual([`${MARKER}\nv2`])
    expect(em.comments('acme', 'shop', 7)).toHaveLength(151)
  })

  it('finds the marker comment on page 3, following the /repositories/{id} links', async () => {
    const em = await start()
    em.seedComments('acme', 'shop', 7, Array.from({ length: 230 }, (_, i) => `chatter ${i}`))
    const [sticky] = em.seedComments('acme', 'shop', 7, [{ body: `${MARKER}\nold`, login: 'github-actions[bot]' }])
    em.seedComments('acme', 'shop', 7, ['after'])

    const result = await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'new')
    expect(result).toMatchObject({ action: 'updated', commentId: sticky?.id })
    expect(em.requests.map((r) => `${r.method} ${r.rawPath}`)).toEqual([
      'GET /repos/acme/shop/issues/7/comments',
      expect.stringMatching(/^GET \/repositories\/\d+\/issues\/7\/comments$/),
      expect.stringMatching(/^GET \/repositories\/\d+\/issues\/7\/comments$/),
      `PATCH /repos/acme/shop/issues/comments/${sticky?.id}`,
    ])
    expect(em.requests.map((r) => r.query['page'])).toEqual([undefined, '2', '3', undefined])
  })

  it('removes duplicates that an earlier race left behind, keeping the oldest', async () => {
    const em = await start()
    const [first, second] = em.seedComments('acme', 'shop', 7, [
      { body: `${MARKER}\na`, login: 'github-actions[bot]' },
      { body: `${MARKER}\nb`, login: 'github-actions[bot]' },
    ])
    const result = await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'c')
    expect(result).toMatchObject({ action: 'updated', commentId: first?.id, duplicatesRemoved: 1 })
    expect(marked(em).map((c) => [c.id, c.body])).toEqual([[first?.id, `${MARKER}\nc`]])
    expect(second).toBeDefined()
  })
})

describe('sticky comment: deletions and races', () => {
  it('creates the comment again when a person deleted it between listing and update', async () => {
    const em = await start({ tokens: { [TOKEN]: {}, human: { login: 'maintainer' } } })
    const client = octokitFor(em, TOKEN)
    await upsertStickyComment(client, PR, 'web', 'v1')
    const [existing] = marked(em)
    // The update waits until the person's DELETE has been answered.
    em.holdUntil({ method: 'PATCH', token: TOKEN }, { method: 'DELETE', token: 'human' })
    const upsert = upsertStickyComment(client, PR, 'web', 'v2')
    await eventually(() => em.requests.some((r) => r.method === 'PATCH'), 'the update to be held')
    await octokitFor(em, 'human').rest.issues.deleteComment({ owner: 'acme', repo: 'shop', comment_id: existing?.id ?? 0 })

    expect(await upsert).toMatchObject({ action: 'created' })
    expect(em.requests.find((r) => r.method === 'PATCH')?.status).toBe(404)
    const [only, ...rest] = marked(em)
    expect(rest).toEqual([])
    expect(only?.body).toBe(`${MARKER}\nv2`)
    expect(only?.id).not.toBe(existing?.id)
  })

  it('two runs that both found nothing and both created end with exactly one comment', async () => {
    const em = await start({ tokens: { 'run-a': {}, 'run-b': {} } })
    // Both first listings are answered together (both see no comment), and both creates too.
    em.barrier({ method: 'GET' }, 2)
    em.barrier({ method: 'POST' }, 2)
    const [a, b] = await Promise.all([
      upsertStickyComment(octokitFor(em, 'run-a'), PR, 'web', 'from a'),
      upsertStickyComment(octokitFor(em, 'run-b'), PR, 'web', 'from b'),
    ])
    expect(em.requests.filter((r) => r.method === 'POST')).toHaveLength(2)
    const [only, ...rest] = marked(em)
    expect(rest).toEqual([])
    expect(a.action !== 'absent' && a.commentId).toBe(only?.id)
    expect(b.action !== 'absent' && b.commentId).toBe(only?.id)
    expect([`${MARKER}\nfrom a`, `${MARKER}\nfrom b`]).toContain(only?.body)
  })

  it('a run whose second listing waits for the other run\'s create removes the later comment', async () => {
    const em = await start({ tokens: { 'run-a': {}, 'run-b': {} } })
    em.barrier({ method: 'GET' }, 2)
    // Run a creates first; run b creates only after a's check listing (its second), so only b sees both.
    em.holdUntil({ method: 'POST', token: 'run-b' }, { method: 'GET', token: 'run-a' }, { untilAnswers: 2 })
    const [a, b] = await Promise.all([
      upsertStickyComment(octokitFor(em, 'run-a'), PR, 'web', 'from a'),
      upsertStickyComment(octokitFor(em, 'run-b'), PR, 'web', 'from b'),
    ])
    expect(a).toMatchObject({ action: 'created', duplicatesRemoved: 0 })
    expect(b).toMatchObject({ action: 'updated', duplicatesRemoved: 1 })
    expect(marked(em).map((c) => c.body)).toEqual([`${MARKER}\nfrom b`])
  })

  it('three racing runs also end with one comment', async () => {
    const em = await start({ tokens: { r1: {}, r2: {}, r3: {} } })
    em.barrier({ method: 'GET' }, 3)
    em.barrier({ method: 'POST' }, 3)
    const results = await Promise.all(['r1', 'r2', 'r3'].map((t) => upsertStickyComment(octokitFor(em, t), PR, 'web', t)))
    const [only, ...rest] = marked(em)
    expect(rest).toEqual([])
    for (const result of results) expect(result.action !== 'absent' && result.commentId).toBe(only?.id)
  })

  it('a create answered 502 after it happened is found again, not posted twice', async () => {
    const em = await start()
    em.faults.add({ method: 'POST', fault: { kind: 'status', status: 502, afterProcessing: true } })
    const result = await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'once')
    expect(result).toMatchObject({ action: 'created' })
    expect(em.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
    expect(marked(em).map((c) => c.body)).toEqual([`${MARKER}\nonce`])
  })

  it('a create that failed with 502 and did not happen is reported, not repeated', async () => {
    const em = await start()
    em.faults.add({ method: 'POST', fault: { kind: 'status', status: 502 } })
    await expect(upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'x')).rejects.toThrow(
      'Could not create the preview comment on pull request #7 of acme/shop: GitHub answered HTTP 502',
    )
    expect(em.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
    expect(marked(em)).toEqual([])
  })

  it('retries a listing that failed with 503 on the ladder', async () => {
    const em = await start()
    const time = fakeTime()
    em.faults.add({ method: 'GET', fault: { kind: 'status', status: 503 } })
    await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'x', { sleep: time.sleep, now: time.now })
    expect(time.sleeps).toEqual([100])
    expect(marked(em)).toHaveLength(1)
  })
})

describe('sticky comment: permissions and rate limits', () => {
  it('a read-only token (a fork PR) gets a message naming the permission, never the token', async () => {
    const em = await start({ tokens: { [TOKEN]: READ_ONLY } })
    const failure = await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'x').catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(GitHubPermissionError)
    const message = (failure as Error).message
    expect(message).toContain('Could not create the preview comment on pull request #7 of acme/shop')
    expect(message).toContain('Resource not accessible by integration')
    expect(message).toContain('`permissions: pull-requests: write`')
    expect(message).toContain('fork')
    expect(message).not.toContain(TOKEN)
  })

  it('an unknown token says to check the github-token input', async () => {
    const em = await start()
    await expect(upsertStickyComment(octokitFor(em, 'ghs_wrong'), PR, 'web', 'x')).rejects.toThrow(
      /GitHub rejected the token \(HTTP 401: Bad credentials\)\. Check the `github-token` input\./,
    )
  })

  it('waits exactly the retry-after GitHub gives on a secondary limit, then succeeds', async () => {
    const time = fakeTime()
    const em = await start({ now: time.now })
    em.faults.add(
      { method: 'POST', fault: { kind: 'secondary-rate-limit', retryAfterSeconds: 7 } },
      { method: 'POST', fault: { kind: 'secondary-rate-limit', status: 429, retryAfterSeconds: 3 } },
    )
    const waits: string[] = []
    const result = await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'x', {
      sleep: time.sleep,
      now: time.now,
      onWait: (line) => waits.push(line),
    })
    expect(result).toMatchObject({ action: 'created' })
    expect(time.sleeps).toEqual([7000, 3000])
    expect(waits[0]).toBe('GitHub secondary rate limit while trying to create the preview comment on pull request #7 of acme/shop: waiting 7 s as GitHub asks (retry-after).')
    expect(marked(em)).toHaveLength(1)
  })

  it('waits until x-ratelimit-reset on a primary limit, then succeeds', async () => {
    const time = fakeTime()
    const em = await start({ now: time.now })
    em.faults.add({ method: 'PATCH', fault: { kind: 'primary-rate-limit', resetAfterSeconds: 42 } })
    await em.seedComments('acme', 'shop', 7, [{ body: `${MARKER}\nold`, login: 'github-actions[bot]' }])
    await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'new', { sleep: time.sleep, now: time.now })
    expect(time.sleeps).toEqual([42_000])
    expect(marked(em).map((c) => c.body)).toEqual([`${MARKER}\nnew`])
  })

  it('gives up after the most retries allowed, with a clear error', async () => {
    const time = fakeTime()
    const em = await start({ now: time.now })
    em.faults.add({ method: 'POST', times: 5, fault: { kind: 'secondary-rate-limit', retryAfterSeconds: 1 } })
    const failure = await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'x', {
      sleep: time.sleep,
      now: time.now,
      maxRetries: 2,
    }).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(GitHubRateLimitError)
    expect((failure as Error).message).toBe(
      "Could not create the preview comment on pull request #7 of acme/shop: GitHub's secondary rate limit is in force (HTTP 403) " +
        'and it asks to wait 1 s (retry-after); giving up: at most 2 retries are allowed, after 2 retries and 2 s of waiting.',
    )
    expect(time.sleeps).toEqual([1000, 1000])
    expect(em.requests.filter((r) => r.method === 'POST')).toHaveLength(3)
  })

  it('does not start a wait longer than the budget left', async () => {
    const time = fakeTime()
    const em = await start({ now: time.now })
    em.faults.add({ method: 'GET', fault: { kind: 'primary-rate-limit', resetAfterSeconds: 600 } })
    const failure = await upsertStickyComment(octokitFor(em, TOKEN), PR, 'web', 'x', {
      sleep: time.sleep,
      now: time.now,
      maxTotalWaitMs: 60_000,
    }).catch((e: unknown) => e)
    expect((failure as Error).message).toContain('asks to wait 600 s (x-ratelimit-reset); giving up now: that is more than the 60 s left of the 60 s this step may wait')
    expect(time.sleeps).toEqual([])
  })
})

describe('sticky comment: GitHub Enterprise Server', () => {
  it('goes through getOctokit(token) with GITHUB_API_URL set to the /api/v3 prefix', async () => {
    const em = await start({ pathPrefix: '/api/v3' })
    em.seedComments('acme', 'shop', 7, Array.from({ length: 120 }, (_, i) => `chatter ${i}`))
    const { stdout } = await execFileAsync(
      process.execPath,
      [fileURLToPath(new URL('../emulator/github/ghes-upsert.ts', import.meta.url)), 'acme', 'shop', '7', 'web', 'on GHES'],
      { env: { ...process.env, GITHUB_API_URL: em.apiUrl, TEST_GITHUB_TOKEN: TOKEN } },
    )
    expect(JSON.parse(stdout)).toMatchObject({ action: 'created' })
    // Both pages, the create and the check listing's two pages: all under the prefix.
    expect(em.requests.map((r) => `${r.method} ${r.rawPath.startsWith('/api/v3/')}`)).toEqual([
      'GET true', 'GET true', 'POST true', 'GET true', 'GET true',
    ])
    expect(marked(em).map((c) => c.body)).toEqual([`${MARKER}\non GHES`])
  })
})
