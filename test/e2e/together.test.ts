/**
 * End-to-end: the bundled action (dist/index.js) with `provider: together`, run the way the runner
 * runs it (INPUT_* env, the runner's files, post as a second process with STATE_*, SIGINT then
 * SIGTERM), against the Together emulator (builder, management API and agents over real sockets) and a
 * real OCI registry on loopback for the images builds start from. What is left running is counted on
 * the emulator: builds, sandboxes, execs and the processes themselves.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startTogetherEmulator, type TogetherEmulator } from '../emulator/together/index.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'
import { runAction, runPost, startAction, type ActionResult } from '../helpers/run-action.ts'
import { eventually } from '../helpers/wait.ts'

interface SavedWork {
  provider: string
  kind: string
  id: string
  parentId?: string
  label: string
  state: string
}

function savedWork(result: ActionResult): SavedWork[] {
  return JSON.parse(result.state.remoteWork ?? '[]') as SavedWork[]
}

function groupBody(stdout: string, title: RegExp): string {
  const start = stdout.search(title)
  expect(start, `group ${title} in:\n${stdout}`).toBeGreaterThanOrEqual(0)
  return stdout.slice(start, stdout.indexOf('::endgroup::', start))
}

describe.skipIf(!registryAvailable())('provider: together through the bundle', () => {
  let registry: RunningRegistry
  let emu: TogetherEmulator
  let base: string
  const temps: string[] = []

  beforeAll(async () => {
    registry = await startRegistry()
    emu = await startTogetherEmulator({ log: () => undefined })
    base = (await pushImage(registry.url, 'team/base', '1', { 'etc/motd': 'base one\n' }, { base: 'base' })).reference
  })
  afterAll(async () => {
    await emu?.close()
    await registry?.close()
    while (temps.length > 0) fs.rmSync(temps.pop() as string, { recursive: true, force: true })
  })
  afterEach(async () => {
    emu.reset()
    // Nothing a test started may outlive it (a kept sandbox's own init is not a process of an exec).
    await eventually(() => emu.counts().processesAlive === 0 && emu.counts().execsRunning === 0, 'no process left behind')
  })

  function workspace(files: Record<string, string>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'together-ws-'))
    temps.push(dir)
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
      fs.writeFileSync(path.join(dir, name), content)
    }
    return dir
  }

  function inputs(extra: Record<string, string> = {}): Record<string, string> {
    return { provider: 'together', token: emu.apiKey, 'api-url': emu.apiUrl, 'builder-url': emu.builderUrl, ...extra }
  }

  const requests = (server: string, method: string, pattern: RegExp) => emu.requests.filter((r) => r.server === server && r.method === method && pattern.test(r.path))
  const sandbox = (id: string | undefined) => emu.sandboxes().find((s) => s.id === id)
  const settledSandboxes = () => emu.counts().sandboxes.running === 0 && emu.counts().sandboxes.starting === 0 && emu.counts().sandboxes.terminating === 0
  /** Nothing of this step is alive on the service: no build, no sandbox, no exec, no process. */
  const nothingAlive = () => settledSandboxes() && emu.counts().builds.running === 0 && emu.counts().execsRunning === 0 && emu.counts().processesAlive === 0

  it('builds a Dockerfile into a snapshot and runs a command in it, streamed into its group, with every output set', async () => {
    const ws = workspace({ Dockerfile: `FROM ${base}\nRUN echo built-$((6*7)) && cat /etc/motd\n` })
    const result = await runAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile', run: 'echo hello; echo oops >&2; cat /etc/motd; echo "in $(pwd)"' }) })
    expect(result.exitCode, result.stdout + result.stderr).toBe(0)

    expect(groupBody(result.stdout, /::group::Build Dockerfile \(Together builder\)/)).toContain('built-42')
    const run = groupBody(result.stdout, /::group::Run: /).split('\n')
    expect(run).toEqual(expect.arrayContaining(['hello', 'oops', 'base one']))
    expect(result.stdout).toMatch(/::endgroup::\n✓ run: exit code 0 in /)

    const { outputs } = result
    const snapshot = emu.snapshots().find((s) => s.id === outputs['snapshot-id'])
    const build = emu.builds().at(-1)
    expect(outputs['image-id']).toBe(outputs['snapshot-id'])
    expect(snapshot?.image).toBe(outputs['image-ref'])
    expect(outputs['build-id']).toBe(build?.id)
    expect(outputs['image-ref']).toBe(build?.imageRef)
    expect(outputs['cache-hit']).toBe('false')
    expect(outputs.digest).not.toBe('')
    expect(outputs.status).toBe('SUCCESS')
    expect(outputs['exit-code']).toBe('0')
    expect(outputs['timed-out']).toBe('false')
    expect(Number(outputs.duration)).toBeGreaterThanOrEqual(0)
    const ran = sandbox(outputs['sandbox-id'])
    expect(ran?.snapshotId).toBe(outputs['snapshot-id'])
    expect(ran?.execs.map((e) => e.id)).toEqual([outputs['exec-id']])
    // An ephemeral sandbox is terminated by main itself: nothing is left for post.
    await eventually(() => sandbox(outputs['sandbox-id'])?.status === 'terminated', 'the sandbox terminated')
    expect(savedWork(result).every((work) => work.state === 'done')).toBe(true)
    expect(result.summary).toContain(outputs['sandbox-id'] as string)
    // The key appears only in the runner's masking command, which the runner never prints.
    for (const text of [result.stdout.replaceAll(`::add-mask::${emu.apiKey}\n`, ''), result.stderr, result.summary, JSON.stringify(result.outputs), JSON.stringify(result.state)]) {
      expect(text).not.toContain(emu.apiKey)
    }
    emu.reset()
    const post = await runPost(result, { inputs: inputs() })
    expect(post.exitCode).toBe(0)
    expect(post.stdout).toContain('nothing to clean up')
    expect(emu.requests).toHaveLength(0)

    // Unchanged: found again on the service by its digest; nothing is built.
    const submitted = emu.counts().builds.submitted
    const again = await runAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile', run: 'cat /etc/motd' }) })
    expect(again.exitCode, again.stdout).toBe(0)
    expect(emu.counts().builds.submitted).toBe(submitted)
    expect(requests('builder', 'POST', /^\/builds$/)).toHaveLength(0)
    expect(requests('api', 'POST', /^\/v1\/snapshots$/)).toHaveLength(0)
    expect(again.outputs).toMatchObject({ 'cache-hit': 'true', 'image-id': outputs['image-id'], 'snapshot-id': outputs['snapshot-id'], digest: outputs.digest })
    // Nothing was built this time: a later step reading build-id or image-ref gets '' (an unset output).
    expect(again.outputs['build-id'] ?? '').toBe('')
    expect(again.outputs['image-ref'] ?? '').toBe('')
    expect(again.stdout).toMatch(/is unchanged .*nothing is built/)
  })

  it('makes a registry image into a snapshot through a one-line FROM pinned to its manifest digest, then reuses it', async () => {
    const pushed = await pushImage(registry.url, 'team/app', 'v1', { 'etc/app.txt': 'app v1\n' }, { base: 'base' })
    const image = `${registry.host}/team/app:v1`
    const first = await runAction({ inputs: inputs({ image, run: 'cat /etc/app.txt' }) })
    expect(first.exitCode, first.stdout).toBe(0)
    expect(groupBody(first.stdout, /::group::Run: /)).toContain('app v1')
    expect(emu.builds().at(-1)?.log.join('\n')).toContain(`FROM ${registry.host}/team/app@${pushed.digest}`)
    expect(first.outputs['cache-hit']).toBe('false')
    expect(first.outputs['build-id']).toBe(emu.builds().at(-1)?.id)

    const submitted = emu.counts().builds.submitted
    emu.reset()
    const second = await runAction({ inputs: inputs({ image, run: 'true' }) })
    expect(second.exitCode).toBe(0)
    expect(requests('builder', 'POST', /^\/builds$/)).toHaveLength(0)
    expect(requests('api', 'POST', /^\/v1\/snapshots$/)).toHaveLength(0)
    expect(second.outputs).toMatchObject({ 'cache-hit': 'true', 'image-id': first.outputs['image-id'], digest: first.outputs.digest })
    expect(emu.counts().builds.submitted).toBe(submitted)
  })

  it('names the result with tag (the snapshot alias), then runs from @alias with nothing built', async () => {
    const ws = workspace({ Dockerfile: `FROM ${base}\nRUN echo aliased > /etc/aliased\n` })
    const built = await runAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile', tag: 'e2e-alias' }) })
    expect(built.exitCode, built.stdout).toBe(0)
    expect(emu.snapshots().find((s) => s.id === built.outputs['snapshot-id'])?.aliases).toContain('e2e-alias')
    const submitted = emu.counts().builds.submitted
    const used = await runAction({ inputs: inputs({ image: '@e2e-alias', run: 'cat /etc/aliased' }) })
    expect(used.exitCode, used.stdout).toBe(0)
    expect(used.outputs['image-id']).toBe(built.outputs['snapshot-id'])
    expect(groupBody(used.stdout, /::group::Run: /)).toContain('aliased')
    expect(emu.counts().builds.submitted).toBe(submitted)
  })

  it('fails the step on a failing command, with the exit code, its last lines outside the group, and the sandbox ended', async () => {
    const result = await runAction({ inputs: inputs({ image: base, run: 'echo before-failing; exit 3' }) })
    expect(result.exitCode).not.toBe(0)
    expect(result.outputs).toMatchObject({ status: 'SUCCESS', 'exit-code': '3' })
    expect(result.stdout).toMatch(/::error::.*exited with code 3/)
    expect(result.stdout.slice(result.stdout.lastIndexOf('::endgroup::'))).toContain('before-failing')
    await eventually(() => sandbox(result.outputs['sandbox-id'])?.status === 'terminated', 'the sandbox terminated')

    const tolerated = await runAction({ inputs: inputs({ image: base, run: 'exit 4', 'fail-on-exit-code': 'false' }) })
    expect(tolerated.exitCode).toBe(0)
    expect(tolerated.outputs['exit-code']).toBe('4')
  })

  it('fails a build that fails, with the builder\'s words, and runs nothing', async () => {
    const ws = workspace({ Dockerfile: `FROM ${base}\nRUN echo about-to-fail && exit 7\n` })
    const sandboxes = emu.sandboxes().length
    const result = await runAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile', run: 'echo never' }) })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::The remote build failed: /)
    expect(result.stdout).toContain('about-to-fail')
    expect(emu.sandboxes()).toHaveLength(sandboxes)
    expect(emu.snapshots().some((s) => s.tags['sandbox-action.digest'] !== undefined && s.image.includes(emu.builds().at(-1)?.id ?? '-'))).toBe(false)
  })

  it('keep-alive leaves the sandbox running after the step; post leaves it alone', async () => {
    const result = await runAction({ inputs: inputs({ image: base, run: 'echo ready', 'keep-alive': 'true', ttl: '10m' }) })
    expect(result.exitCode, result.stdout).toBe(0)
    const id = result.outputs['sandbox-id']
    expect(sandbox(id)?.status).toBe('running')
    const create = requests('api', 'POST', /^\/v1\/sandboxes$/).at(-1)
    expect(create).toBeDefined()
    expect(requests('api', 'POST', /\/terminate$/)).toHaveLength(0)
    emu.reset()
    const post = await runPost(result, { inputs: inputs({ 'keep-alive': 'true', ttl: '10m' }) })
    expect(post.exitCode).toBe(0)
    expect(requests('api', 'POST', /\/terminate$/)).toHaveLength(0)
    expect(sandbox(id)?.status).toBe('running')
    await terminate(id as string)
  })

  it('a SIGKILLed keep-alive run: post kills the command and still leaves the sandbox running', async () => {
    const action = startAction({ inputs: inputs({ image: base, run: 'echo kept-$((6*7)); sleep 60', 'keep-alive': 'true', ttl: '10m' }) })
    await action.waitForStdout(/kept-42/, 30_000)
    action.child.kill('SIGKILL')
    const main = await action.done
    const id = savedWork(main).find((work) => work.kind === 'sandbox')?.id
    expect(emu.counts().execsRunning).toBe(1)
    const post = await runPost(main, { inputs: inputs({ 'keep-alive': 'true', ttl: '10m' }) })
    expect(post.exitCode).toBe(0)
    await eventually(() => emu.counts().execsRunning === 0 && emu.counts().processesAlive === 0, 'the command killed')
    expect(requests('api', 'POST', /\/terminate$/)).toHaveLength(0)
    expect(sandbox(id)?.status).toBe('running')
    await terminate(id as string)
  })

  it('SIGINT during the build deletes the build and fails the step; post finds nothing left', async () => {
    const ws = workspace({ Dockerfile: `FROM ${base}\nRUN echo building-$((6*7)) && sleep 60\n` })
    const cancelled = emu.counts().builds.cancelled
    const action = startAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile', run: 'echo never' }) })
    await action.waitForStdout(/building-42/, 30_000)
    action.cancel()
    const result = await action.done
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::The job was cancelled \(SIGINT\)/)
    expect(result.outputs.status).toBe('CANCELLED')
    const build = emu.builds().at(-1)
    expect(requests('builder', 'DELETE', /^\/builds\//).map((r) => r.path)).toEqual([`/builds/${build?.id}`])
    await eventually(nothingAlive, 'nothing alive')
    expect(emu.counts().builds.cancelled).toBe(cancelled + 1)
    expect(build?.state).toBe('cancelled')
    expect(emu.sandboxes().filter((s) => s.status !== 'terminated')).toEqual([])
    emu.reset()
    const post = await runPost(result, { inputs: inputs() })
    expect(post.exitCode).toBe(0)
    expect(post.stdout).not.toMatch(/::warning::/)
    expect(requests('builder', 'DELETE', /./)).toHaveLength(0)
  })

  it('SIGINT during the run kills the command and terminates the sandbox; the outputs say CANCELLED', async () => {
    const action = startAction({ inputs: inputs({ image: base, run: 'echo running-$((6*7)); sleep 60' }) })
    await action.waitForStdout(/running-42/, 30_000)
    action.cancel()
    const result = await action.done
    expect(result.exitCode).not.toBe(0)
    const work = savedWork(result)
    const sandboxId = work.find((w) => w.kind === 'sandbox')?.id
    const execId = work.find((w) => w.kind === 'exec')?.id
    expect(result.outputs).toMatchObject({ status: 'CANCELLED', 'exec-id': execId })
    expect(requests('api', 'POST', /\/terminate$/).map((r) => r.path)).toEqual([`/v1/sandboxes/${sandboxId}/terminate`])
    await eventually(nothingAlive, 'nothing alive')
    expect(sandbox(sandboxId)?.status).toBe('terminated')
    expect(result.summary).toContain('cancelled')
    emu.reset()
    const post = await runPost(result, { inputs: inputs() })
    expect(post.exitCode).toBe(0)
    expect(post.stdout).not.toMatch(/::warning::/)
    expect(requests('api', 'POST', /\/terminate$/)).toHaveLength(0)
  })

  it('SIGTERM alone (no SIGINT first) during a build and during a run: the build deleted, the sandbox terminated', async () => {
    const ws = workspace({ Dockerfile: `FROM ${base}\nRUN echo term-building-$((6*7)) && sleep 60\n` })
    const building = startAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile', run: 'echo never' }) })
    await building.waitForStdout(/term-building-42/, 30_000)
    building.child.kill('SIGTERM')
    const built = await building.done
    expect(built.exitCode).not.toBe(0)
    expect(built.stdout).toMatch(/::error::The job was cancelled \(SIGTERM\)/)
    const buildId = savedWork(built).find((w) => w.kind === 'build')?.id
    expect(requests('builder', 'DELETE', /^\/builds\//).map((r) => r.path)).toEqual([`/builds/${buildId}`])

    const running = startAction({ inputs: inputs({ image: base, run: 'echo term-running-$((6*7)); sleep 60' }) })
    await running.waitForStdout(/term-running-42/, 30_000)
    running.child.kill('SIGTERM')
    const ran = await running.done
    expect(ran.exitCode).not.toBe(0)
    expect(ran.outputs.status).toBe('CANCELLED')
    const sandboxId = savedWork(ran).find((w) => w.kind === 'sandbox')?.id
    expect(requests('api', 'POST', /\/terminate$/).map((r) => r.path)).toEqual([`/v1/sandboxes/${sandboxId}/terminate`])
    await eventually(nothingAlive, 'nothing alive')
    expect(sandbox(sandboxId)?.status).toBe('terminated')
  })

  it('a SIGKILLed main during the run is cleaned up by post: the sandbox terminated, no process alive; post again is a no-op', async () => {
    const action = startAction({ inputs: inputs({ image: base, run: 'echo running-$((6*7)); sleep 60' }) })
    await action.waitForStdout(/running-42/, 30_000)
    action.child.kill('SIGKILL')
    const main = await action.done
    const sandboxId = savedWork(main).find((w) => w.kind === 'sandbox')?.id
    expect(sandbox(sandboxId)?.status).toBe('running')
    const post = await runPost(main, { inputs: inputs() })
    expect(post.exitCode).toBe(0)
    expect(post.stdout).toContain(`Cancelled run (sandbox) (sandbox ${sandboxId})`)
    expect(post.stdout).not.toMatch(/::(warning|error)::/)
    await eventually(nothingAlive, 'nothing alive')
    expect(sandbox(sandboxId)?.status).toBe('terminated')
    const again = await runPost(main, { inputs: inputs() })
    expect(again.exitCode).toBe(0)
    expect(again.stdout).not.toMatch(/::(warning|error)::/)
  })

  it('a SIGKILLed main during the build is cleaned up by post: the build deleted', async () => {
    const ws = workspace({ Dockerfile: `FROM ${base}\nRUN echo building-$((6*7)) && sleep 60\n` })
    const action = startAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile' }) })
    await action.waitForStdout(/building-42/, 30_000)
    action.child.kill('SIGKILL')
    const main = await action.done
    const buildId = savedWork(main).find((w) => w.kind === 'build')?.id
    expect(emu.builds().find((b) => b.id === buildId)?.state).toBe('running')
    const post = await runPost(main, { inputs: inputs() })
    expect(post.exitCode).toBe(0)
    expect(requests('builder', 'DELETE', /^\/builds\//).map((r) => r.path)).toEqual([`/builds/${buildId}`])
    await eventually(nothingAlive, 'nothing alive')
    expect(emu.builds().find((b) => b.id === buildId)?.state).toBe('cancelled')
  })

  it('never makes a second snapshot or sandbox when a create answers 5xx after doing its work', async () => {
    const ws = workspace({ Dockerfile: `FROM ${base}\nRUN echo unique-${Date.now()}\n` })
    emu.faults.add(
      { server: 'api', method: 'POST', path: '^/v1/snapshots$', action: { kind: 'status-after', status: 502 } },
      { server: 'api', method: 'POST', path: '^/v1/sandboxes$', action: { kind: 'status-after', status: 500 } },
    )
    const snapshots = emu.snapshots().length
    const sandboxes = emu.sandboxes().length
    const result = await runAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile', run: 'echo once' }) })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(emu.faults.applied()).toHaveLength(2)
    expect(emu.snapshots()).toHaveLength(snapshots + 1)
    expect(emu.sandboxes()).toHaveLength(sandboxes + 1)
    expect(requests('api', 'POST', /^\/v1\/(snapshots|sandboxes)$/)).toHaveLength(2)
    await eventually(settledSandboxes, 'the sandbox terminated')
  })

  it('never submits a build twice when the submit answers 5xx after the builder took it', async () => {
    const ws = workspace({ Dockerfile: `FROM ${base}\nRUN echo unique-${Date.now()}\n` })
    emu.faults.add({ server: 'builder', method: 'POST', path: '^/builds$', action: { kind: 'status-after', status: 502 } })
    const submitted = emu.counts().builds.submitted
    const result = await runAction({ workspace: ws, inputs: inputs({ dockerfile: 'Dockerfile', run: 'echo never' }) })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::.*502/)
    expect(requests('builder', 'POST', /^\/builds$/)).toHaveLength(1)
    expect(emu.counts().builds.submitted).toBe(submitted + 1)
    await eventually(() => emu.counts().builds.running === 0, 'the orphan build finished')
  })

  it('fan-out over shards: a sandbox per run, max-parallel held, one failing shard fails the step after all ended', async () => {
    const before = new Set(emu.sandboxes().map((s) => s.id))
    const ours = () => emu.sandboxes().filter((s) => !before.has(s.id))
    let peak = 0
    const sample = setInterval(() => {
      peak = Math.max(peak, ours().filter((s) => s.status === 'running' || s.status === 'starting').length)
    }, 5)
    const result = await runAction({
      inputs: inputs({ image: base, run: 'echo "shard-$SHARD_INDEX of $SHARD_COUNT"; sleep 0.3; [ "$SHARD_INDEX" != 1 ] || exit 4', shards: '4', 'max-parallel': '2' }),
    }).finally(() => clearInterval(sample))
    expect(result.exitCode, result.stdout).not.toBe(0)
    expect(peak).toBeLessThanOrEqual(2)
    expect(ours()).toHaveLength(4)
    const runs = JSON.parse(result.outputs.results ?? '[]') as { label: string; state: string; 'exit-code': number | null; operation: string }[]
    expect(runs.map((run) => [run.state, run['exit-code']])).toEqual([['succeeded', 0], ['failed', 4], ['succeeded', 0], ['succeeded', 0]])
    expect(new Set(runs.map((run) => run.operation))).toEqual(new Set(ours().map((s) => s.id)))
    for (const index of [0, 1, 2, 3]) expect(groupBody(result.stdout, new RegExp(`::group::shard ${index} of 4: `))).toContain(`shard-${index} of 4`)
    expect(result.stdout.search(/::error::1 of 4 runs failed: shard 1 of 4/)).toBeGreaterThan(result.stdout.lastIndexOf('::endgroup::'))
    expect(result.summary).toMatch(/4 runs: 3 succeeded, 1 failed/)
    await eventually(() => ours().every((s) => s.status === 'terminated'), 'every sandbox terminated')
  })

  it('fan-out: SIGINT kills every running command and terminates every sandbox', async () => {
    const before = new Set(emu.sandboxes().map((s) => s.id))
    const action = startAction({ inputs: inputs({ image: base, run: 'sleep 60', shards: '3', 'max-parallel': '3' }) })
    await eventually(() => emu.counts().execsRunning === 3, 'three commands running', 30_000)
    action.cancel()
    const result = await action.done
    expect(result.exitCode).not.toBe(0)
    expect(JSON.parse(result.outputs.results ?? '[]').map((run: { state: string }) => run.state)).toEqual(['cancelled', 'cancelled', 'cancelled'])
    await eventually(nothingAlive, 'nothing alive')
    const ours = emu.sandboxes().filter((s) => !before.has(s.id))
    expect(ours.map((s) => s.status)).toEqual(['terminated', 'terminated', 'terminated'])
  })

  it('refuses a ConTree-only input before anything remote exists', async () => {
    const result = await runAction({ inputs: inputs({ image: base, run: 'true', disposable: 'true' }) })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::Input 'disposable': is a ConTree input; it has no meaning with provider: together/)
    expect(emu.requests).toHaveLength(0)
  })

  async function terminate(id: string): Promise<void> {
    const res = await fetch(`${emu.apiUrl}/v1/sandboxes/${id}/terminate`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${emu.apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ snapshot: null }),
    })
    expect(res.ok).toBe(true)
    await eventually(() => sandbox(id)?.status === 'terminated', 'the kept sandbox terminated')
  }
})
