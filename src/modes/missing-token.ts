/**
 * A run without the service token. On a pull request from a fork (or one Dependabot opened) that is
 * how GitHub runs it, not a mistake: one notice says why and the step ends without failing, unless the
 * workflow asked for `fail-on-missing-token: true`. Anywhere else it is an input error.
 */
import * as core from '@actions/core'
import type { MissingTokenError } from '../errors.ts'
import { whyNoSecrets, type EventContext } from './pull-request.ts'

/** True when the step may end quietly; otherwise the step has been failed. */
export function handleMissingToken(error: MissingTokenError, event: EventContext): boolean {
  const why = whyNoSecrets(event)
  if (why === undefined) {
    core.setFailed(error.message)
    return false
  }
  if (error.failOnMissingToken) {
    core.setFailed(`${error.message}. There is no service token because ${why}; fail-on-missing-token is true.`)
    return false
  }
  core.notice(
    `Skipped: there is no service token because ${why}. Nothing was built or started. ` +
      'For previews of fork pull requests, build under pull_request and deploy from a workflow_run workflow (see the README, "PR previews"); ' +
      'set fail-on-missing-token: true to fail instead.',
  )
  core.setOutput('status', 'skipped')
  return true
}
