import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { startTogetherEmulator } from './index.ts'
import { agent, api, call, contextArchive, execToEnd, followBuild, runningSandbox, submitBuild, waitUntil } from './test-client.ts'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('Together emulator: a whole job', () => {
  it('builds with RUN and COPY, snapshots the image_ref, starts a sandbox, streams an exec, terminates', async () => {
    const emu = await startTogetherEmulator({ log: () => undefined })
    try {
      const context = contextArchive({
        Dockerfile: 'FROM busybox:latest\nWORKDIR /srv\nCOPY app.sh ./\nRUN chmod 755 app.sh && ./app.sh > built.txt\n',
        'app.sh': '#!/bin/sh\necho "app ran"\n',
      })
      const submitted = await submitBuild(emu, context, { image_name: 'image-1:1', cache_key: 'whole-job' })
      const logs = await followBuild(emu, submitted.json().build_id)
      expect(logs.terminal).toEqual({ done: true })
      const status = (await call(`${emu.builderUrl}/builds/${submitted.json().build_id}`, 'GET', { token: emu.apiKey })).json()
      const snapshot = await api(emu, 'POST', '/snapshots', { image: status.image_ref, architecture: 'amd64', tags: { digest: 'd1' } })
      expect(snapshot.status).toBe(201)
      const sandbox = await runningSandbox(emu, snapshot.json().id)
      const { frames } = await execToEnd(sandbox, 'sh', ['-c', 'cat built.txt; ./app.sh >&2; exit 4'], { cwd: '/srv' })
      expect(frames.filter((f) => f.type === 'stdout').map((f) => f.output).join('')).toBe('app ran\n')
      expect(frames.filter((f) => f.type === 'stderr').map((f) => f.output).join('')).toBe('app ran\n')
      expect(frames.at(-1).exitCode).toBe(4)
      expect((await api(emu, 'POST', `/sandboxes/${sandbox.id}/terminate`)).json().status).toBe('terminating')
      expect((await api(emu, 'POST', `/sandboxes/${sandbox.id}/wait`)).json().status).toBe('terminated')
      expect(emu.counts()).toMatchObject({ builds: { submitted: 1, succeeded: 1 }, runStepsExecuted: 1, snapshots: { active: 1 }, sandboxes: { terminated: 1 }, processesAlive: 0 })
    } finally {
      await emu.close()
    }
  })
})

describe('Together emulator: nothing outlives a cancel', () => {
  it('counts a mixed job (a build and a sandbox running a command) down to nothing when both are cancelled', async () => {
    const emu = await startTogetherEmulator({ log: () => undefined })
    try {
      const build = (await submitBuild(emu, contextArchive({ Dockerfile: 'FROM busybox:latest\nRUN echo building && sleep 300\n' }))).json()
      const snapshot = (await api(emu, 'POST', '/snapshots', { image: 'busybox' })).json()
      const sandbox = await runningSandbox(emu, snapshot.id)
      await agent(sandbox, 'POST', '/execs', { command: 'sh', args: ['-c', 'sleep 300 & exec sleep 300'] })
      await waitUntil(() => emu.builds()[0]?.log.some((line) => line.endsWith(' building')) ?? false, 'the RUN to start')
      await waitUntil(() => emu.counts().processesAlive >= 3, 'the processes to start')
      expect(emu.counts()).toMatchObject({ builds: { submitted: 1, running: 1 }, sandboxes: { running: 1 }, execsRunning: 1 })

      // What the post step does: DELETE every build, terminate every sandbox.
      expect((await call(`${emu.builderUrl}/builds/${build.build_id}`, 'DELETE', { token: emu.apiKey })).status).toBe(204)
      expect((await api(emu, 'POST', `/sandboxes/${sandbox.id}/terminate`)).status).toBe(200)
      await api(emu, 'POST', `/sandboxes/${sandbox.id}/wait`)
      await waitUntil(() => emu.counts().processesAlive === 0 && emu.counts().builds.running === 0 && emu.counts().execsRunning === 0, 'everything to stop')
      expect(emu.counts()).toMatchObject({
        builds: { submitted: 1, running: 0, cancelled: 1 },
        sandboxes: { running: 0, terminated: 1 },
        execsRunning: 0,
        processesAlive: 0,
      })
    } finally {
      await emu.close()
    }
  })

  it('close() kills every process it started and removes its temp dirs', async () => {
    const emu = await startTogetherEmulator({ log: () => undefined })
    const snapshot = (await api(emu, 'POST', '/snapshots', { image: 'busybox' })).json()
    const sandbox = await runningSandbox(emu, snapshot.id)
    const exec = (await agent(sandbox, 'POST', '/execs', { command: 'sleep', args: ['300'] })).json()
    await submitBuild(emu, contextArchive({ Dockerfile: 'FROM busybox:latest\nRUN sleep 300\n' }))
    await waitUntil(() => emu.counts().processesAlive >= 2, 'the processes to start')
    const root = emu.sandboxes()[0]?.root as string
    expect(existsSync(root)).toBe(true)
    await emu.close()
    expect(alive(exec.pid)).toBe(false)
    expect(existsSync(root)).toBe(false)
    expect(emu.counts().processesAlive).toBe(0)
    await expect(api(emu, 'GET', '/snapshots')).rejects.toThrow()
  })
})
