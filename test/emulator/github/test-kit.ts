// Helpers for tests that drive the action's GitHub modules against the emulator.
import { getOctokit } from '@actions/github'
import type { GitHubClient } from '../../../src/github/requester.ts'
import type { GitHubEmulator } from './server.ts'

/** The real Octokit of @actions/github, pointed at the emulator. */
export function octokitFor(emulator: GitHubEmulator, token: string): GitHubClient {
  return getOctokit(token, { baseUrl: emulator.apiUrl })
}

/**
 * A clock that only moves when the code under test sleeps, shared with the emulator so that
 * `x-ratelimit-reset` and the client's wait agree. `sleeps` records every wait asked for.
 */
export function fakeTime(startMs = Date.UTC(2026, 10, 22, 12, 0, 0)) {
  let now = startMs
  const sleeps: number[] = []
  return {
    now: () => now,
    sleep: async (ms: number): Promise<void> => {
      sleeps.push(ms)
      now += ms
    },
    sleeps,
  }
}
