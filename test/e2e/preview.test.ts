/**
 * PR previews end to end: the bundled action (dist/index.js) run as the runner runs it, for the events
 * of one pull request's life (opened, synchronize, closed), against the Together emulator (builder,
 * API, agents), a real OCI registry on loopback for the base image, and the GitHub REST emulator for
 * the sticky comment. Then the same life for ConTree tag previews against the ConTree emulator.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { startCacheService } from '../emulator/cache-service.ts'
import { startGitHubEmulator, type GitHubEmulator } from '../emulator/github/server.ts'
import { READ_ONLY } from '../emulator/github/types.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'
import { startTogetherEmulator, type TogetherEmulator } from '../emulator/together/index.ts'
import { eventually } from '../helpers/wait.ts'
import { executedCommands, runAction, runPost, startAction, type ActionOptions, type ActionResult } from '../helpers/run-action.ts'

const OWNER = 'acme'
const REPO = 'shop'
const PR = 7
const RACE_PR = 8
const SHA1 = 'a'.repeat(40)
const SHA2 = 'b'.repeat(40)
const GH_TOKEN = 'ghs_rw_Zq8v1sB7preview'
const GH_READ_ONLY = 'ghs_ro_k3Jd9preview'

const temps: string[] = []
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  temps.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true })
})

// GitHub Enterprise Server: the API under /api/v3, reached through GITHUB_API_URL alone. (The ConTree
// tests use a github.com-like one: on GHES @actions/cache wants the older cache service.)
let github: GitHubEmulator
beforeAll(async () => {
  github = await startGitHubEmulator({
    pathPrefix: '/api/v3',
    tokens: { [GH_TOKEN]: { repositories: [`${OWNER}/${REPO}`] }, [GH_READ_ONLY]: { ...READ_ONLY, repositories: [`${OWNER}/${REPO}`] } },
    repos: [{ owner: OWNER, name: REPO, pulls: [{ number: PR, title: 'Add `cart` | *bold*', headRef: 'feature/cart', headSha: SHA1 }, { number: RACE_PR, headRef: 'race', headSha: SHA1 }] }],
  })
})
afterAll(async () => {
  await github?.close()
})

type PullAction = 'opened' | 'synchronize' | 'reopened' | 'closed'

/** The runner's view of a pull_request event: the payload file and the GITHUB_* variables. */
function eventEnv(action: PullAction, sha: string, opts: { fork?: boolean; runId?: number; pr?: number; api?: GitHubEmulator } = {}): Record<string, string> {
  const number = opts.pr ?? PR
  const api = opts.api ?? github
  const dir = tempDir('event-')
  const eventPath = path.join(dir, 'event.json')
  const headRepo = opts.fork ? { full_name: 'mallory/shop', fork: true } : { full_name: `${OWNER}/${REPO}`, fork: false }
  const payload = {
    action,
    number,
    pull_request: {
      number,
      title: 'Add `cart` | *bold*',
      state: action === 'closed' ? 'closed' : 'open',
      head: { sha, ref: 'feature/cart', repo: headRepo },
      base: { ref: 'main', repo: { full_name: `${OWNER}/${REPO}` } },
    },
    repository: { full_name: `${OWNER}/${REPO}`, name: REPO, owner: { login: OWNER } },
  }
  fs.writeFileSync(eventPath, JSON.stringify(payload))
  return {
    GITHUB_EVENT_NAME: 'pull_request',
    GITHUB_EVENT_PATH: eventPath,
    GITHUB_REPOSITORY: `${OWNER}/${REPO}`,
    GITHUB_SERVER_URL: api.serverUrl,
    GITHUB_API_URL: api.apiUrl,
    GITHUB_RUN_ID: String(opts.runId ?? 4242),
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_SHA: 'c'.repeat(40),
    GITHUB_ACTOR: 'octocat',
  }
}

function stickyComments(pr = PR): Array<{ id: number; body: string }> {
  return github.comments(OWNER, REPO, pr).filter((comment) => comment.body.startsWith('<!-- sandbox-preview:'))
}

function expectNoSecret(result: ActionResult, secrets: string[]): void {
  const stdout = result.stdout.replace(/::add-mask::.*\n/g, '')
  for (const secret of secrets) {
    for (const text of [stdout, result.stderr, result.summary, JSON.stringify(result.outputs)]) expect(text).not.toContain(secret)
  }
}

function failureText(result: ActionResult): string {
  return `exit ${result.exitCode}\n${result.stdout.slice(-4000)}\n${result.stderr.slice(-2000)}`
}

describe.skipIf(!registryAvailable())('PR previews on Together Sandbox', () => {
  let registry: RunningRegistry
  let emu: TogetherEmulator
  let base: string
  let workspace: string

  beforeAll(async () => {
    registry = await startRegistry()
    emu = await startTogetherEmulator({ log: () => undefined })
    base = (await pushImage(registry.url, 'team/base', '1', { 'srv/index.html': 'hello from the base\n' }, { base: 'base' })).reference
    workspace = tempDir('preview-ws-')
  })
  afterAll(async () => {
    await emu?.close()
    await registry?.close()
  })
  afterEach(() => {
    emu.reset()
    github.faults.clear()
  })

  function writeApp(version: string): void {
    fs.writeFileSync(path.join(workspace, 'Dockerfile'), `FROM ${base}\nCOPY site /srv\n`)
    fs.mkdirSync(path.join(workspace, 'site'), { recursive: true })
    fs.writeFileSync(path.join(workspace, 'site', 'index.html'), `version ${version}\n`)
  }

  // The emulator's sandboxes share the host's network, unlike the service's: each run's server gets
  // its own port, so the old and the new preview can both listen while one replaces the other.
  let nextPort = 18080

  function previewRun(action: PullAction, sha: string, extra: Record<string, string> = {}, env: Record<string, string> = {}): ActionOptions {
    const port = String(nextPort++)
    return {
      // A closed pull request's job skips the checkout: the step's Dockerfile is not there.
      workspace: action === 'closed' ? tempDir('closed-ws-') : workspace,
      inputs: {
        provider: 'together',
        'api-url': emu.apiUrl,
        'builder-url': emu.builderUrl,
        token: emu.apiKey,
        mode: action === 'closed' ? 'teardown' : 'preview',
        dockerfile: 'Dockerfile',
        ttl: '2h',
        start: `httpd -f -p ${port} -h /srv`,
        'wait-for-port': port,
        'github-token': GH_TOKEN,
        ...extra,
      },
      env: { ...eventEnv(action, sha), ...env },
    }
  }

  /** The preview sandboxes of the PR the service still runs. */
  function livePreviewSandboxes(): string[] {
    return emu
      .sandboxes()
      .filter((s) => s.status === 'running' || s.status === 'starting')
      .map((s) => s.id)
  }

  it('opened → synchronize → closed: one sandbox at a time, one sticky comment, nothing left after teardown', async () => {
    writeApp('1')
    const opened = await runAction(previewRun('opened', SHA1))
    expect(opened.exitCode, failureText(opened)).toBe(0)
    const first = opened.outputs['sandbox-id'] as string
    expect(first).toBeTruthy()
    expect(opened.outputs['preview-name']).toBe(`pr-${PR}`)
    expect(opened.outputs['snapshot-id']).toBeTruthy()
    expect(Date.parse(opened.outputs['expires-at'] as string)).toBeGreaterThan(Date.now() + 60 * 60 * 1000)
    expect(livePreviewSandboxes()).toEqual([first])
    // The post step (always run) leaves the handed-over preview alone.
    const post = await runPost(opened, { workspace, env: { TOGETHER_API_KEY: emu.apiKey } })
    expect(post.exitCode, failureText(post)).toBe(0)
    expect(livePreviewSandboxes()).toEqual([first])
    expect(stickyComments()).toHaveLength(1)
    const comment = stickyComments()[0]?.body as string
    expect(comment).toContain('ready')
    expect(comment).toContain(first)
    expect(comment).toContain(`[\`${SHA1.slice(0, 7)}\`](${github.serverUrl}/${OWNER}/${REPO}/commit/${SHA1})`)
    expect(comment).toMatch(/Open ports \| `180\d\d`/)
    expect(comment).toContain(`together-sandbox sandboxes exec run ${first}`)
    expect(comment).toContain(`/${OWNER}/${REPO}/actions/runs/4242`)
    // The PR title is the PR author's text: escaped, never markdown.
    expect(comment).not.toContain('*bold*')
    expect(opened.summary).toContain(first)
    expect(opened.summary).toContain('[the preview comment](')
    expectNoSecret(opened, [GH_TOKEN, emu.apiKey])
    expect(executedCommands(opened.stdout).filter((line) => !/^::(add-mask|group|endgroup|stop-commands|debug|notice|warning)/.test(line) && !/^::[0-9a-f]{16,}::$/.test(line))).toEqual([])

    // A push with new code: rebuilt, the new sandbox up before the old one goes.
    writeApp('2')
    const built = emu.counts().builds.submitted
    const pushed = await runAction(previewRun('synchronize', SHA2))
    expect(pushed.exitCode, failureText(pushed)).toBe(0)
    const second = pushed.outputs['sandbox-id'] as string
    expect(second).not.toBe(first)
    expect(emu.counts().builds.submitted).toBe(built + 1)
    expect(pushed.outputs['cache-hit']).toBe('false')
    await eventually(() => livePreviewSandboxes().length === 1, 'the earlier preview sandbox ended')
    expect(livePreviewSandboxes()).toEqual([second])
    expect(stickyComments()).toHaveLength(1)
    expect(stickyComments()[0]?.body).toContain(second)
    expect(stickyComments()[0]?.body).toContain(SHA2.slice(0, 7))

    // The same head again (a re-run): nothing is built, the snapshot is reused.
    const rerun = await runAction(previewRun('synchronize', SHA2))
    expect(rerun.exitCode, failureText(rerun)).toBe(0)
    expect(emu.counts().builds.submitted).toBe(built + 1)
    expect(rerun.outputs['cache-hit']).toBe('true')
    expect(rerun.outputs['snapshot-id']).toBe(pushed.outputs['snapshot-id'])
    await eventually(() => livePreviewSandboxes().length === 1, 'the earlier preview sandbox ended')

    // Closed: everything of the PR found by its tags and ended; nothing is built; the comment says removed.
    const closed = await runAction(previewRun('closed', SHA2))
    expect(closed.exitCode, failureText(closed)).toBe(0)
    expect(emu.counts().builds.submitted).toBe(built + 1)
    await eventually(() => livePreviewSandboxes().length === 0, 'no preview sandbox left')
    expect(JSON.parse(closed.outputs.removed as string)).toEqual([{ what: 'sandbox', id: rerun.outputs['sandbox-id'] }])
    expect(stickyComments()).toHaveLength(1)
    expect(stickyComments()[0]?.body).toMatch(/removed/)
    expect(stickyComments()[0]?.body).toContain(rerun.outputs['sandbox-id'] as string)

    // Closed again (a re-run, or a preview that expired): still a success.
    const again = await runAction(previewRun('closed', SHA2))
    expect(again.exitCode, failureText(again)).toBe(0)
    expect(JSON.parse(again.outputs.removed as string)).toEqual([])
    expect(stickyComments()).toHaveLength(1)
  })

  it('a refresh cancelled while its new sandbox comes up keeps the previous preview and leaves nothing half-made', async () => {
    writeApp('3')
    const opened = await runAction(previewRun('reopened', SHA1))
    expect(opened.exitCode, failureText(opened)).toBe(0)
    const previous = opened.outputs['sandbox-id'] as string
    const commentBefore = stickyComments()[0]?.body

    // The new one never opens its port: the run waits for it until cancelled.
    const running = startAction(previewRun('synchronize', SHA2, { start: 'sleep 600', 'wait-for-port': '9099' }))
    await eventually(() => emu.sandboxes().some((s) => s.id !== previous && s.status === 'running'), 'the new preview sandbox running', 60_000)
    running.cancel()
    const cancelled = await running.done
    expect(cancelled.exitCode).not.toBe(0)
    expect(cancelled.stdout).toMatch(/cancelled/i)
    await eventually(() => livePreviewSandboxes().length === 1, 'the new sandbox terminated')
    expect(livePreviewSandboxes()).toEqual([previous])
    const post = await runPost(cancelled, { workspace, env: { TOGETHER_API_KEY: emu.apiKey } })
    expect(post.exitCode, failureText(post)).toBe(0)
    expect(livePreviewSandboxes()).toEqual([previous])
    await eventually(() => emu.counts().execsRunning === 1, 'only the previous preview\'s server still runs')
    // The comment still describes the preview that is up.
    expect(stickyComments()).toHaveLength(1)
    expect(stickyComments()[0]?.body).toBe(commentBefore)

    const closed = await runAction(previewRun('closed', SHA2))
    expect(closed.exitCode, failureText(closed)).toBe(0)
    await eventually(() => livePreviewSandboxes().length === 0, 'no preview sandbox left')
  })

  it('a fork pull request without the service token: one notice, the step does not fail, nothing is made', async () => {
    writeApp('4')
    const sandboxes = emu.sandboxes().length
    const builds = emu.counts().builds.submitted
    const fork = previewRun('opened', SHA1, { token: '', 'github-token': GH_READ_ONLY }, eventEnv('opened', SHA1, { fork: true }))
    const result = await runAction(fork)
    expect(result.exitCode, failureText(result)).toBe(0)
    const notices = result.stdout.split('\n').filter((line) => line.startsWith('::notice'))
    expect(notices).toHaveLength(1)
    expect(notices[0]).toMatch(/fork.*mallory\/shop/)
    expect(result.stdout).not.toMatch(/^::error/m)
    expect(result.outputs.status).toBe('skipped')
    expect(emu.sandboxes()).toHaveLength(sandboxes)
    expect(emu.counts().builds.submitted).toBe(builds)

    const strict = await runAction(previewRun('opened', SHA1, { token: '', 'fail-on-missing-token': 'true' }, eventEnv('opened', SHA1, { fork: true })))
    expect(strict.exitCode).not.toBe(0)
    expect(strict.stdout).toMatch(/::error::.*token.*fork/)
  })

  it('a token that may not write comments fails the step saying it needs pull-requests: write, after the preview is up and reported', async () => {
    writeApp('5')
    const result = await runAction(previewRun('opened', SHA1, { 'github-token': GH_READ_ONLY }))
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::.*pull-requests: write/)
    expect(result.outputs['sandbox-id']).toBeTruthy()
    const closed = await runAction(previewRun('closed', SHA1, { comment: 'false' }))
    expect(closed.exitCode, failureText(closed)).toBe(0)
    await eventually(() => livePreviewSandboxes().length === 0, 'no preview sandbox left')
  })
})

describe('PR previews on ConTree (a tag)', () => {
  const TOKEN = 'tok-preview-Kd82nQ'
  let emu: ContreeEmulator
  let cache: Awaited<ReturnType<typeof startCacheService>>
  let workspace: string
  let dotcom: GitHubEmulator

  beforeAll(async () => {
    dotcom = await startGitHubEmulator({
      tokens: { [GH_TOKEN]: { repositories: [`${OWNER}/${REPO}`] } },
      repos: [{ owner: OWNER, name: REPO, branches: { main: SHA1, 'feature/cart': SHA2 }, pulls: [{ number: PR, headRef: 'feature/cart', headSha: SHA2 }, { number: RACE_PR, headRef: 'race', headSha: SHA1 }] }],
    })
    emu = await startContreeEmulator({ token: TOKEN, keepaliveMs: 200 })
    cache = await startCacheService()
    workspace = tempDir('preview-contree-ws-')
  })
  afterAll(async () => {
    await emu?.close()
    await cache?.close()
    await dotcom?.close()
  })

  function writeApp(version: string): void {
    fs.writeFileSync(path.join(workspace, 'Dockerfile'), `FROM busybox:latest\nRUN echo "version ${version}" > /srv-version\n`)
  }

  function previewRun(action: PullAction, sha: string, extra: Record<string, string> = {}): ActionOptions {
    return {
      workspace: action === 'closed' ? tempDir('closed-ws-') : workspace,
      inputs: { 'api-url': emu.url, token: TOKEN, mode: action === 'closed' ? 'teardown' : 'preview', dockerfile: 'Dockerfile', 'github-token': GH_TOKEN, 'preview-name': 'shop-pr-7', deployment: 'true', ...extra },
      env: { ...eventEnv(action, sha, { runId: 5151, api: dotcom }), ...cache.env() },
    }
  }

  const tagged = (): string[] => emu.images().filter((image) => image.tag === 'shop-pr-7').map((image) => image.uuid)
  const spawns = (): number => emu.requests.filter((r) => r.method === 'POST' && r.path === '/v1/instances').length

  it('opened → synchronize → closed with a deployment: the tag follows the PR head, one comment, one deployment, nothing left after teardown', async () => {
    writeApp('1')
    const opened = await runAction(previewRun('opened', SHA1))
    expect(opened.exitCode, failureText(opened)).toBe(0)
    const first = opened.outputs['image-id'] as string
    expect(tagged()).toEqual([first])
    expect(opened.outputs['preview-name']).toBe('shop-pr-7')
    const comments = () => dotcom.comments(OWNER, REPO, PR).filter((c) => c.body.startsWith('<!-- sandbox-preview:shop-pr-7 -->'))
    expect(comments()).toHaveLength(1)
    expect(comments()[0]?.body).toContain(first)
    expect(comments()[0]?.body).toContain('contree run --use tag:shop-pr-7')
    const deployments = () => dotcom.deployments(OWNER, REPO)
    expect(deployments()).toHaveLength(1)
    expect(deployments()[0]).toMatchObject({ environment: 'preview/shop-pr-7', transient_environment: true, sha: SHA1 })
    expect(dotcom.statuses(OWNER, REPO, deployments()[0]?.id as number).map((s) => s.state)).toEqual(['in_progress', 'success'])

    writeApp('2')
    const pushed = await runAction(previewRun('synchronize', SHA2))
    expect(pushed.exitCode, failureText(pushed)).toBe(0)
    const second = pushed.outputs['image-id'] as string
    expect(second).not.toBe(first)
    expect(tagged()).toEqual([second])
    expect(comments()).toHaveLength(1)
    expect(comments()[0]?.body).toContain(second)
    // The earlier deployment is retired once the new one succeeded.
    expect(deployments()).toHaveLength(1)
    expect(deployments()[0]?.sha).toBe(SHA2)

    // An unchanged head builds nothing: no spawn at all.
    const before = spawns()
    const rerun = await runAction(previewRun('synchronize', SHA2))
    expect(rerun.exitCode, failureText(rerun)).toBe(0)
    expect(spawns(), rerun.stdout).toBe(before)
    expect(tagged()).toEqual([second])

    const closed = await runAction(previewRun('closed', SHA2))
    expect(closed.exitCode, failureText(closed)).toBe(0)
    expect(spawns()).toBe(before)
    expect(tagged()).toEqual([])
    expect(comments()).toHaveLength(1)
    expect(comments()[0]?.body).toMatch(/removed/)
    expect(deployments()).toEqual([])

    const again = await runAction(previewRun('closed', SHA2))
    expect(again.exitCode, failureText(again)).toBe(0)
    expect(JSON.parse(again.outputs.removed as string)).toEqual([])
  })

  it('a rate-limited comment write is retried after the time GitHub gives, once, and the step succeeds', async () => {
    writeApp('9')
    dotcom.faults.add({ method: 'POST', path: new RegExp(`/issues/${PR}/comments$`), times: 1, fault: { kind: 'secondary-rate-limit', retryAfterSeconds: 1 } })
    dotcom.faults.add({ method: 'PATCH', path: /\/issues\/comments\/\d+$/, times: 1, fault: { kind: 'secondary-rate-limit', retryAfterSeconds: 1 } })
    const result = await runAction(previewRun('reopened', SHA2))
    expect(result.exitCode, failureText(result)).toBe(0)
    expect(result.stdout).toMatch(/secondary rate limit while trying to (create|update) the preview comment.*waiting 1 s as GitHub asks \(retry-after\)/)
    expect(dotcom.comments(OWNER, REPO, PR).filter((c) => c.body.startsWith('<!-- sandbox-preview:shop-pr-7 -->'))).toHaveLength(1)
    expect(dotcom.faults.pending()).toHaveLength(1)
    dotcom.faults.clear()
    const closed = await runAction(previewRun('closed', SHA2))
    expect(closed.exitCode, failureText(closed)).toBe(0)
  })

  it('a refresh cancelled during its build keeps the tag on the previous image and leaves no operation running', async () => {
    writeApp('10')
    const opened = await runAction(previewRun('reopened', SHA1))
    expect(opened.exitCode, failureText(opened)).toBe(0)
    const previous = opened.outputs['image-id'] as string
    const comment = () => dotcom.comments(OWNER, REPO, PR).filter((c) => c.body.startsWith('<!-- sandbox-preview:shop-pr-7 -->'))[0]?.body
    const before = comment()

    fs.writeFileSync(path.join(workspace, 'Dockerfile'), 'FROM busybox:latest\nRUN echo slow-step && sleep 60\n')
    const running = startAction(previewRun('synchronize', SHA2))
    await running.waitForStdout(/slow-step/, 60_000)
    running.cancel()
    const cancelled = await running.done
    expect(cancelled.exitCode).not.toBe(0)
    expect(cancelled.outputs.status).toBe('CANCELLED')
    await eventually(() => emu.operations().every((op) => op.status !== 'EXECUTING' && op.status !== 'PENDING' && op.status !== 'ASSIGNED'), 'no operation left running')
    expect(tagged()).toEqual([previous])
    expect(comment()).toBe(before)

    const closed = await runAction(previewRun('closed', SHA2))
    expect(closed.exitCode, failureText(closed)).toBe(0)
    expect(tagged()).toEqual([])
  })

  it('two runs racing on one pull request leave one sticky comment', async () => {
    // An untagged image both runs name: neither replaces the other's preview, so both write a comment.
    const made = await runAction({ workspace, inputs: { 'api-url': emu.url, token: TOKEN, image: 'tag:busybox:latest', run: 'true' }, env: cache.env() })
    expect(made.exitCode, failureText(made)).toBe(0)
    const image = made.outputs['result-image-uuid'] as string
    // Both runs find no comment, and both create theirs at the same moment.
    dotcom.barrier({ method: 'POST', path: new RegExp(`/issues/${RACE_PR}/comments$`) }, 2)
    const race = (action: PullAction, runId: number): ActionOptions => ({
      workspace,
      inputs: { 'api-url': emu.url, token: TOKEN, mode: action === 'closed' ? 'teardown' : 'preview', image, 'github-token': GH_TOKEN },
      env: { ...eventEnv(action, SHA1, { runId, pr: RACE_PR, api: dotcom }), ...cache.env() },
    })
    const [a, b] = await Promise.all([runAction(race('opened', 1)), runAction(race('synchronize', 2))])
    expect(a.exitCode, failureText(a)).toBe(0)
    expect(b.exitCode, failureText(b)).toBe(0)
    expect(dotcom.requests.filter((r) => r.method === 'POST' && r.path.endsWith(`/issues/${RACE_PR}/comments`))).toHaveLength(2)
    const sticky = () => dotcom.comments(OWNER, REPO, RACE_PR).filter((c) => c.body.startsWith(`<!-- sandbox-preview:pr-${RACE_PR} -->`))
    expect(sticky()).toHaveLength(1)
    expect(emu.images().filter((i) => i.tag === `pr-${RACE_PR}`).map((i) => i.uuid)).toEqual([image])

    const closed = await runAction(race('closed', 3))
    expect(closed.exitCode, failureText(closed)).toBe(0)
    expect(sticky()).toHaveLength(1)
    expect(sticky()[0]?.body).toMatch(/removed/)
    expect(emu.images().filter((i) => i.tag === `pr-${RACE_PR}`)).toEqual([])
  })
})
