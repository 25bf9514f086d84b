/**
 * End-to-end: one job with a ConTree step and a Together step, through the bundle as the runner runs
 * them. Each step has its own runner files and state; the job's environment is shared (here it holds
 * TOGETHER_API_KEY, while the ConTree step takes its token as an input). Both mains are killed hard
 * while their commands run, then the post steps run in reverse order, each with its own state: each
 * must end its own work, and nothing may be left alive on either emulator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'
import { startTogetherEmulator, type TogetherEmulator } from '../emulator/together/index.ts'
import { runPost, startAction, type ActionResult } from '../helpers/run-action.ts'
import { eventually } from '../helpers/wait.ts'

const CONTREE_TOKEN = 'tok-mixed-Pq7r2W'

interface SavedWork {
  provider: string
  kind: string
  id: string
}

const savedWork = (result: ActionResult): SavedWork[] => JSON.parse(result.state.remoteWork ?? '[]') as SavedWork[]

describe.skipIf(!registryAvailable())('a job with a ConTree step and a Together step', () => {
  let contree: ContreeEmulator
  let together: TogetherEmulator
  let registry: RunningRegistry
  let base: string

  beforeAll(async () => {
    contree = await startContreeEmulator({ token: CONTREE_TOKEN, keepaliveMs: 200 })
    registry = await startRegistry()
    together = await startTogetherEmulator({ log: () => undefined })
    base = (await pushImage(registry.url, 'team/base', '1', { 'etc/motd': 'base one\n' }, { base: 'base' })).reference
  })
  afterAll(async () => {
    await together?.close()
    await registry?.close()
    await contree?.close()
  })

  const LIVE: ReadonlySet<string> = new Set(['PENDING', 'ASSIGNED', 'EXECUTING'])
  const contreeLive = () => contree.operations().filter((op) => LIVE.has(op.status)).length
  const togetherLive = () => {
    const counts = together.counts()
    return counts.sandboxes.running + counts.sandboxes.starting + counts.sandboxes.terminating + counts.builds.running + counts.execsRunning + counts.processesAlive
  }

  it('both mains killed hard: each post step cancels its own work, nothing stays alive on either service', async () => {
    const jobEnv = { TOGETHER_API_KEY: together.apiKey }
    const contreeInputs = { 'api-url': contree.url, token: CONTREE_TOKEN, image: 'tag:busybox:latest', run: 'echo contree-$((40+2)); sleep 60' }
    const togetherInputs = { provider: 'together', 'api-url': together.apiUrl, 'builder-url': together.builderUrl, image: base, run: 'echo together-$((40+2)); sleep 60' }

    const first = startAction({ inputs: contreeInputs, env: jobEnv })
    await first.waitForStdout(/contree-42/, 30_000)
    first.child.kill('SIGKILL')
    const contreeMain = await first.done

    const second = startAction({ inputs: togetherInputs, env: jobEnv })
    await second.waitForStdout(/together-42/, 30_000)
    second.child.kill('SIGKILL')
    const togetherMain = await second.done

    // Each step's state names only its own provider's work; both are still running remotely.
    expect(new Set(savedWork(contreeMain).map((work) => work.provider))).toEqual(new Set(['contree']))
    expect(new Set(savedWork(togetherMain).map((work) => work.provider))).toEqual(new Set(['together']))
    expect(contreeLive()).toBe(1)
    expect(together.counts().sandboxes.running).toBe(1)

    // Post steps run in reverse order of the mains, each with its own inputs and state.
    contree.reset()
    together.reset()
    const togetherPost = await runPost(togetherMain, { inputs: togetherInputs, env: jobEnv })
    expect(togetherPost.exitCode).toBe(0)
    expect(togetherPost.stdout).not.toMatch(/::(warning|error)::/)
    expect(contree.requests).toHaveLength(0)
    expect(contreeLive()).toBe(1)

    const contreePost = await runPost(contreeMain, { inputs: contreeInputs, env: jobEnv })
    expect(contreePost.exitCode).toBe(0)
    expect(contreePost.stdout).not.toMatch(/::(warning|error)::/)
    expect(contreePost.stdout).toMatch(/Cancelled run \(operation /)

    // Neither token reaches a log, the state or the outputs (the runner's masking command aside).
    for (const step of [contreeMain, togetherMain, contreePost, togetherPost]) {
      for (const token of [CONTREE_TOKEN, together.apiKey]) {
        const stdout = step.stdout.replaceAll(`::add-mask::${token}\n`, '')
        for (const text of [stdout, step.stderr, step.summary, JSON.stringify(step.outputs), JSON.stringify(step.state)]) expect(text).not.toContain(token)
      }
    }
    await eventually(() => contreeLive() === 0 && togetherLive() === 0, 'nothing alive on either service', 20_000)
    const sandboxId = savedWork(togetherMain).find((work) => work.kind === 'sandbox')?.id
    expect(together.sandboxes().find((s) => s.id === sandboxId)?.status).toBe('terminated')
    const opId = savedWork(contreeMain)[0]?.id
    expect(contree.operations().find((op) => op.uuid === opId)?.status).toBe('CANCELLED')
  })
})
