/**
 * `mode: teardown` (the pull request was closed): every part of the PR's preview is found on the
 * service by its tags, never remembered, and removed; one already gone, expired, or never made is a
 * success, so the run can be repeated. Nothing is built or prepared. The sticky comment is rewritten
 * as "removed" so it never points at a preview that no longer exists.
 */
import * as core from '@actions/core'
import { errorMessage, InputError } from '../errors.ts'
import type { Inputs } from '../inputs.ts'
import { escapeMarkdownInline } from '../output/markdown-escape.ts'
import { say } from '../output/say.ts'
import type { PreviewPart, PreviewTarget } from '../providers/types.ts'
import { eventContext, PreviewGitHub, runPlace } from './preview-github.ts'
import { pullRequestOf } from './pull-request.ts'
import { runInSession, type ModeSession, type SessionDeps } from './session.ts'

/** Bound on removing one part (a DELETE or a terminate). */
const REMOVE_TIMEOUT_MS = 30_000

export function runTeardown(inputs: Inputs, deps: SessionDeps): Promise<void> {
  return runInSession(inputs, deps, teardown)
}

async function teardown({ inputs, provider, ctx }: ModeSession): Promise<void> {
  const settings = inputs.preview
  if (!settings) throw new Error('internal: mode teardown without its inputs')
  if (!provider.findPreviews || !provider.removePreview) throw new InputError('provider', `${provider.name} cannot keep previews`)
  const pull = pullRequestOf(eventContext(), settings, { sha: false })
  const place = runPlace()
  const name = settings.name ?? `pr-${pull.number}`
  const target: PreviewTarget = { name, pullRequest: pull.number, repository: `${place.repository.owner}/${place.repository.repo}` }
  core.setOutput('preview-name', name)
  core.setOutput('pr-number', String(pull.number))

  const parts = await provider.findPreviews(target, ctx.signal)
  const removed: PreviewPart[] = []
  const gone: PreviewPart[] = []
  const failed: string[] = []
  for (const part of parts) {
    ctx.signal.throwIfAborted()
    try {
      const result = await provider.removePreview(target, part, REMOVE_TIMEOUT_MS)
      ;(result === 'removed' ? removed : gone).push(part)
      say(result === 'removed' ? `Removed ${part.what} ${part.id}.` : `${part.what} ${part.id} was already gone.`)
    } catch (error) {
      failed.push(`${part.what} ${part.id}: ${errorMessage(error)}`)
    }
  }
  if (parts.length === 0) say(`Preview ${name} of pull request #${pull.number}: nothing is left on the service (never made, expired, or already removed).`)
  core.setOutput('removed', JSON.stringify(removed.map(({ what, id }) => ({ what, id }))))
  core.setOutput('status', failed.length ? 'failed' : 'removed')
  ctx.report.sections.push(teardownSummary(name, pull.number, removed, gone, failed))
  if (failed.length) throw new Error(`Preview ${name} could not be removed completely: ${failed.join('; ')}`)

  if (settings.comment || settings.deployment) {
    const github = await PreviewGitHub.open(settings, place, pull.number, ctx.signal)
    try {
      if (settings.comment) {
        const written = await github.writeRemoved(name, {
          removed: [...removed, ...gone],
          reason: pull.closed ? 'the pull request was closed' : 'teardown was asked for',
          ...(pull.headSha ? { commitSha: pull.headSha } : {}),
        })
        say(written.action === 'absent' ? `Preview ${name} had no comment to mark removed.` : `Preview comment marked removed: ${written.htmlUrl}.`)
      }
      if (settings.deployment) say(`Deployments of preview ${name} retired: ${await github.tearDownDeployments(name)}.`)
    } catch (error) {
      throw new Error(`Could not report the teardown on GitHub: ${errorMessage(error)}`, { cause: error })
    }
  }
}

function teardownSummary(name: string, pullNumber: number, removed: readonly PreviewPart[], gone: readonly PreviewPart[], failed: readonly string[]): string {
  const list = (parts: readonly PreviewPart[]): string => (parts.length ? parts.map((part) => `${escapeMarkdownInline(part.what)} \`${part.id.replace(/`/g, "'")}\``).join(', ') : 'none')
  const lines = [`### Preview \`${name}\` of pull request #${pullNumber}: ${failed.length ? 'not fully removed' : 'removed'}`, '', `- Removed: ${list(removed)}`, `- Already gone: ${list(gone)}`]
  for (const line of failed) lines.push(`- Failed: ${escapeMarkdownInline(line)}`)
  return `${lines.join('\n')}\n`
}
