/**
 * A sandbox's way to `running`: the wait repeated while the service still moves it, and one message
 * for anything else it settles on, checked in the SDKs' order with what to do about the reason.
 */
import { describe, expect, it } from 'vitest'
import { describeLifecycleFailure, SandboxLifecycleError, waitUntilRunning } from '../../src/providers/together/lifecycle.ts'
import type { Sandbox, SandboxStatus } from '../../src/providers/together/wire.ts'

function sandbox(status: SandboxStatus, reason = 'cold_start_requested'): Sandbox {
  return {
    id: 'sb-1',
    organization_id: null,
    project_id: 'p',
    snapshot_id: 's',
    cpu: 1,
    memory_bytes: 2e9,
    agent: status === 'running' ? { version: '1', token: 't', url: 'http://agent' } : { version: null, token: null, url: null },
    ttl: null,
    tags: {},
    termination_policy: null,
    status,
    status_reason: reason,
    created_at: '',
    started_at: null,
    terminated_at: null,
    updated_at: '',
  }
}

describe('sandbox lifecycle', () => {
  it('waits again while the service still reports it starting, and returns it running', async () => {
    const answers = [sandbox('starting'), sandbox('starting'), sandbox('running', 'cold_started')]
    const asked: string[] = []
    const api = { waitForSandbox: async (id: string) => (asked.push(id), answers.shift() as Sandbox) }
    const running = await waitUntilRunning(api, sandbox('starting'), { sleep: async () => undefined })
    expect(running.agent.url).toBe('http://agent')
    expect(asked).toEqual(['sb-1', 'sb-1', 'sb-1'])
  })

  it('does not wait on a sandbox that is already running', async () => {
    const api = { waitForSandbox: async (): Promise<Sandbox> => { throw new Error('not expected') } }
    expect((await waitUntilRunning(api, sandbox('running', 'cold_started'))).status).toBe('running')
  })

  it('fails with the reason and what to do when it settles elsewhere', async () => {
    const api = { waitForSandbox: async () => sandbox('failed_to_start', 'out_of_capacity') }
    const error = await waitUntilRunning(api, sandbox('starting')).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(SandboxLifecycleError)
    expect((error as Error).message).toBe('Sandbox sb-1 failed to start (out_of_capacity): the service had no room for it right now; run the job again in a little while.')
  })

  it.each<[SandboxStatus, string, 'running' | 'terminated', RegExp]>([
    ['unrecovered', 'crashed', 'running', /crashed and could not be recovered \(crashed\)/],
    ['recovering', 'node_lost', 'running', /is being recovered/],
    ['starting', 'cold_start_requested', 'running', /was still starting when the wait for it ended/],
    ['failed_to_start', 'internal_error', 'running', /failed to start \(internal_error\): .*snapshot's image is missing or damaged/],
    ['terminated', 'oom_killed', 'running', /terminated instead of running \(oom_killed\): it ran out of memory; raise the memory input/],
    ['running', 'cold_started', 'terminated', /is still running: the request to terminate it did not take effect/],
    ['terminating', 'termination_requested', 'terminated', /was still terminating/],
  ])('%s (%s) expecting %s', (status, reason, expected, message) => {
    expect(describeLifecycleFailure(sandbox(status, reason), expected)).toMatch(message)
  })
})
