// The preview's GitHub Deployment against the emulator, through the real Octokit of @actions/github.
import { afterEach, describe, expect, it } from 'vitest'
import {
  finishPreviewDeployment,
  previewEnvironment,
  startPreviewDeployment,
  tearDownPreviewDeployments,
} from '../../src/github/deployment.ts'
import { GitHubPermissionError } from '../../src/github/errors.ts'
import { startGitHubEmulator, type GitHubEmulator } from '../emulator/github/server.ts'
import { fakeTime, octokitFor } from '../emulator/github/test-kit.ts'
import { READ_ONLY } from '../emulator/github/types.ts'

const SHA = 'd'.repeat(40)
const REPO = { owner: 'acme', repo: 'shop' }
const ENV = previewEnvironment(7)
const LOG = 'https://github.com/acme/shop/actions/runs/4242'
const TOKEN = 'ghs_deployTokenForTests01'

let emulator: GitHubEmulator | undefined
afterEach(async () => {
  await emulator?.close()
  emulator = undefined
})

async function start(now?: () => number): Promise<GitHubEmulator> {
  emulator = await startGitHubEmulator({
    tokens: { [TOKEN]: {}, reader: READ_ONLY },
    repos: [{ owner: 'acme', name: 'shop', pulls: [{ number: 7, headRef: 'feature', headSha: SHA, fork: true }] }],
    ...(now ? { now } : {}),
  })
  return emulator
}

function states(em: GitHubEmulator, id: number): string[] {
  return em.statuses('acme', 'shop', id).map((s) => s.state)
}

async function refresh(em: GitHubEmulator, url = 'https://pr-7.preview.example/'): Promise<number> {
  const client = octokitFor(em, TOKEN)
  const { deploymentId } = await startPreviewDeployment(client, REPO, { ref: SHA, environment: ENV, logUrl: LOG, payload: { preview: 'web' } })
  await finishPreviewDeployment(client, REPO, { deploymentId, environment: ENV, outcome: 'success', logUrl: LOG, environmentUrl: url })
  return deploymentId
}

describe('preview deployment', () => {
  it('names the environment after the PR unless the workflow gives one', () => {
    expect(previewEnvironment(7)).toBe('preview/pr-7')
    expect(previewEnvironment(7, ' staging ')).toBe('staging')
    expect(previewEnvironment(7, '')).toBe('preview/pr-7')
  })

  it('creates a transient deployment of the head SHA, in_progress then success with the URLs', async () => {
    const em = await start()
    const id = await refresh(em)
    const [created] = em.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/deployments'))
    expect(created?.body).toEqual({
      ref: SHA,
      environment: 'preview/pr-7',
      task: 'deploy',
      transient_environment: true,
      production_environment: false,
      auto_merge: false,
      required_contexts: [],
      payload: { preview: 'web' },
    })
    expect(em.deployments('acme', 'shop')).toMatchObject([{ id, sha: SHA, transient_environment: true, production_environment: false }])
    expect(em.statuses('acme', 'shop', id)).toMatchObject([
      { state: 'in_progress', log_url: LOG, environment_url: '' },
      { state: 'success', log_url: LOG, environment_url: 'https://pr-7.preview.example/' },
    ])
  })

  it('a refresh retires the older deployment of the environment (GitHub skips transient ones)', async () => {
    const em = await start()
    const first = await refresh(em)
    const second = await refresh(em)
    expect(em.deployments('acme', 'shop').map((d) => d.id)).toEqual([second])
    expect(em.requests.some((r) => r.method === 'POST' && r.path === `/repos/acme/shop/deployments/${first}/statuses` && (r.body as { state: string }).state === 'inactive')).toBe(true)
    expect(states(em, second)).toEqual(['in_progress', 'success'])
  })

  it('a failure is reported without an environment URL and retires nothing', async () => {
    const em = await start()
    const client = octokitFor(em, TOKEN)
    const older = await refresh(em)
    const { deploymentId } = await startPreviewDeployment(client, REPO, { ref: SHA, environment: ENV, logUrl: LOG })
    const result = await finishPreviewDeployment(client, REPO, {
      deploymentId, environment: ENV, outcome: 'failure', logUrl: LOG, environmentUrl: 'https://x.example', description: 'x'.repeat(500),
    })
    expect(result).toEqual({ reported: true, retired: 0 })
    expect(em.statuses('acme', 'shop', deploymentId).at(-1)).toMatchObject({ state: 'failure', environment_url: '' })
    expect(em.statuses('acme', 'shop', deploymentId).at(-1)?.description).toHaveLength(140)
    expect(states(em, older)).toEqual(['in_progress', 'success'])
  })

  it('never links an environment URL that is not http(s)', async () => {
    const em = await start()
    await refresh(em, 'javascript:alert(1)')
    const [deployment] = em.deployments('acme', 'shop')
    expect(em.statuses('acme', 'shop', deployment?.id ?? 0).at(-1)).toMatchObject({ state: 'success', environment_url: '' })
  })

  it('an older run finishing after a newer one removed its deployment reports nothing and fails nothing', async () => {
    const em = await start()
    const client = octokitFor(em, TOKEN)
    const { deploymentId: older } = await startPreviewDeployment(client, REPO, { ref: SHA, environment: ENV, logUrl: LOG })
    await tearDownPreviewDeployments(client, REPO, { environment: ENV, logUrl: LOG })
    const result = await finishPreviewDeployment(client, REPO, { deploymentId: older, environment: ENV, outcome: 'success', logUrl: LOG })
    expect(result).toEqual({ reported: false, retired: 0 })
  })

  it('an older run finishing after a newer one started leaves the newer deployment alone', async () => {
    const em = await start()
    const client = octokitFor(em, TOKEN)
    const { deploymentId: older } = await startPreviewDeployment(client, REPO, { ref: SHA, environment: ENV, logUrl: LOG })
    const { deploymentId: newer } = await startPreviewDeployment(client, REPO, { ref: SHA, environment: ENV, logUrl: LOG })
    const result = await finishPreviewDeployment(client, REPO, { deploymentId: older, environment: ENV, outcome: 'success', logUrl: LOG })
    expect(result).toEqual({ reported: true, retired: 0 })
    expect(states(em, newer)).toEqual(['in_progress'])
  })

  it('teardown makes every deployment of the environment inactive, then deletes it; a second teardown finds nothing', async () => {
    const em = await start()
    const client = octokitFor(em, TOKEN)
    const mine = await refresh(em)
    const other = await startPreviewDeployment(client, REPO, { ref: SHA, environment: 'preview/pr-8', logUrl: LOG })
    const { deploymentId: pending } = await startPreviewDeployment(client, REPO, { ref: SHA, environment: ENV, logUrl: LOG })

    expect(await tearDownPreviewDeployments(client, REPO, { environment: ENV, logUrl: LOG })).toEqual({ removed: 2 })
    expect(em.deployments('acme', 'shop').map((d) => d.id)).toEqual([other.deploymentId])
    const deletes = em.requests.filter((r) => r.method === 'DELETE').map((r) => r.path)
    expect(deletes.sort()).toEqual([`/repos/acme/shop/deployments/${mine}`, `/repos/acme/shop/deployments/${pending}`].sort())
    expect(await tearDownPreviewDeployments(client, REPO, { environment: ENV, logUrl: LOG })).toEqual({ removed: 0 })
  })

  it('a read-only token gets a message naming deployments: write, never the token', async () => {
    const em = await start()
    const failure = await startPreviewDeployment(octokitFor(em, 'reader'), REPO, { ref: SHA, environment: ENV, logUrl: LOG }).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(GitHubPermissionError)
    expect((failure as Error).message).toContain('Could not create a deployment for environment preview/pr-7 of acme/shop')
    expect((failure as Error).message).toContain('`permissions: deployments: write`')
    expect((failure as Error).message).not.toContain('reader')
  })

  it('waits out a secondary rate limit on a status', async () => {
    const time = fakeTime()
    const em = await start(time.now)
    em.faults.add({ method: 'POST', path: /\/statuses$/, fault: { kind: 'secondary-rate-limit', status: 429, retryAfterSeconds: 2 } })
    const { deploymentId } = await startPreviewDeployment(octokitFor(em, TOKEN), REPO, { ref: SHA, environment: ENV, logUrl: LOG }, { sleep: time.sleep, now: time.now })
    expect(time.sleeps).toEqual([2000])
    expect(states(em, deploymentId)).toEqual(['in_progress'])
  })
})
