import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { MODE_INPUT_NAMES, parseModeInputs } from '../../src/modes/mode-inputs.ts'
import { pullRequestOf, whyNoSecrets, type EventContext } from '../../src/modes/pull-request.ts'
import { REPO_ROOT } from '../helpers/run-action.ts'

const SHA = 'f'.repeat(40)

function pullEvent(action: string, opts: { fork?: boolean; number?: number } = {}): EventContext {
  return {
    eventName: 'pull_request',
    payload: {
      action,
      pull_request: {
        number: opts.number ?? 7,
        title: 'Fix it',
        head: { sha: SHA, ref: 'fix', repo: opts.fork ? { full_name: 'mallory/shop', fork: true } : { full_name: 'acme/shop', fork: false } },
        base: { repo: { full_name: 'acme/shop' } },
      },
    },
  }
}

describe('mode inputs', () => {
  it('defaults to mode run and refuses preview inputs there', () => {
    expect(parseModeInputs({}).mode).toBe('run')
    expect(() => parseModeInputs({ 'preview-name': 'x' })).toThrow(/'preview-name'.*mode preview/)
    expect(() => parseModeInputs({ mode: 'deploy' })).toThrow(/'mode'.*not a mode/)
  })

  it('reads the preview settings, each checked', () => {
    const modes = parseModeInputs({ mode: 'preview', 'pr-number': '12', sha: SHA.toUpperCase(), 'wait-for-port': '3000', 'github-token': 't', 'preview-name': 'docs-pr-12' })
    expect(modes.preview).toMatchObject({ pullRequest: 12, sha: SHA, waitForPort: 3000, name: 'docs-pr-12', comment: true, deployment: false })
    expect(() => parseModeInputs({ mode: 'preview', 'pr-number': '12; rm' })).toThrow(/'pr-number'/)
    expect(() => parseModeInputs({ mode: 'preview', 'wait-for-port': '70000' })).toThrow(/'wait-for-port'/)
    expect(() => parseModeInputs({ mode: 'teardown', 'preview-name': '../x' })).toThrow(/'preview-name'/)
  })

  it('every mode input is declared in action.yml', () => {
    const yml = fs.readFileSync(path.join(REPO_ROOT, 'action.yml'), 'utf8')
    for (const name of MODE_INPUT_NAMES) expect(yml, name).toMatch(new RegExp(`\\n  ${name}:\\n    description:`))
  })
})

describe('the pull request of a run', () => {
  it('comes from a pull_request event, closed or not', () => {
    expect(pullRequestOf(pullEvent('synchronize'), {}, { sha: true })).toMatchObject({ number: 7, headSha: SHA, closed: false, fork: false })
    expect(pullRequestOf(pullEvent('closed'), {}, { sha: false })).toMatchObject({ number: 7, closed: true })
  })

  it('needs pr-number and sha where the event names none (workflow_run of a fork)', () => {
    const run: EventContext = { eventName: 'workflow_run', payload: { workflow_run: { head_sha: SHA, pull_requests: [] } } }
    expect(() => pullRequestOf(run, {}, { sha: true })).toThrow(/'pr-number'.*workflow_run/)
    expect(pullRequestOf(run, { pullRequest: 9, sha: SHA }, { sha: true })).toMatchObject({ number: 9, headSha: SHA, closed: false })
    // The event's head belongs to its own pull request only.
    expect(() => pullRequestOf(pullEvent('opened'), { pullRequest: 8 }, { sha: true })).toThrow(/'sha'/)
  })

  it('says why a fork (or Dependabot) run has no secrets, and nothing for others', () => {
    expect(whyNoSecrets(pullEvent('opened', { fork: true }))).toMatch(/fork \(mallory\/shop\)/)
    expect(whyNoSecrets({ ...pullEvent('opened'), actor: 'dependabot[bot]' })).toMatch(/Dependabot/)
    expect(whyNoSecrets(pullEvent('opened'))).toBeUndefined()
    expect(whyNoSecrets({ eventName: 'push', payload: {} })).toBeUndefined()
  })
})
