/**
 * `mode: preview`: a pull request's preview, refreshed on every push (issue 9 §1). The image is
 * prepared the provider's way (cached by digest, so an unchanged head builds nothing), then the
 * provider brings the new preview up and only after that retires the earlier one. The sticky comment
 * is written once the outcome is known: a run cancelled half-way writes nothing, so the comment still
 * describes the earlier preview, which is still there.
 */
import * as core from '@actions/core'
import { errorMessage, InputError } from '../errors.ts'
import { imageRequest } from '../image-request.ts'
import type { Inputs } from '../inputs.ts'
import { httpUrl, markdownLink } from '../github/comment-markdown.ts'
import { escapeMarkdownInline } from '../output/markdown-escape.ts'
import { say, warn } from '../output/say.ts'
import { PreviewSupersededError, type PreparedImage, type PreviewOutcome, type PreviewRequest, type PreviewTarget, type Provider } from '../providers/types.ts'
import { eventContext, PreviewGitHub, runPlace } from './preview-github.ts'
import { pullRequestOf } from './pull-request.ts'
import { runInSession, type ModeSession, type SessionDeps } from './session.ts'

/** For people: what the service is called. */
export const SERVICE_NAMES: Readonly<Record<Provider['name'], string>> = { contree: 'ConTree', together: 'Together Sandbox' }

export function runPreview(inputs: Inputs, deps: SessionDeps): Promise<void> {
  return runInSession(inputs, deps, preview)
}

async function preview({ inputs, provider, ctx }: ModeSession): Promise<void> {
  const settings = inputs.preview
  if (!settings) throw new Error('internal: mode preview without its inputs')
  if (!provider.replacePreview) throw new InputError('provider', `${provider.name} cannot keep previews`)
  const pull = pullRequestOf(eventContext(), settings, { sha: true })
  if (pull.closed) throw new InputError('mode', `is preview, but this event closed pull request #${pull.number}: use mode teardown for it (e.g. mode: \${{ github.event.action == 'closed' && 'teardown' || 'preview' }})`)
  const commit = pull.headSha as string
  const place = runPlace()
  const name = settings.name ?? `pr-${pull.number}`
  const github = settings.comment || settings.deployment ? await PreviewGitHub.open(settings, place, pull.number, ctx.signal) : undefined
  core.setOutput('preview-name', name)
  core.setOutput('pr-number', String(pull.number))
  say(`Preview ${name} of pull request #${pull.number} at ${commit.slice(0, 12)}.`)

  const deploymentId = github && settings.deployment ? await github.startDeployment(name, commit) : undefined
  let image: PreparedImage
  let outcome: PreviewOutcome
  try {
    image = await provider.prepareImage(imageRequest(inputs), ctx)
    const request: PreviewRequest = {
      name,
      pullRequest: pull.number,
      repository: `${place.repository.owner}/${place.repository.repo}`,
      commit,
      ...(settings.start ? { start: { command: settings.start, env: settings.env ?? {}, ...(settings.cwd ? { cwd: settings.cwd } : {}) } } : {}),
      ...(settings.waitForPort !== undefined ? { waitForPort: settings.waitForPort } : {}),
      deadlineMs: inputs.deadlineSeconds * 1000,
    }
    outcome = await provider.replacePreview(image, request, ctx)
  } catch (error) {
    if (error instanceof PreviewSupersededError) {
      // The newer run reports the preview (its comment, its deployment); this one only says why it stops.
      say(error.message)
      core.setOutput('status', 'superseded')
      if (deploymentId !== undefined && github) await tellGitHub('the superseded deployment', () => github.finishDeployment(name, deploymentId, 'failure', 'superseded by a newer run'))
      return
    }
    // A cancelled run says nothing on GitHub: the earlier preview, and its comment, still stand.
    if (!ctx.signal.aborted && github) {
      const why = errorMessage(error)
      await tellGitHub('the failure', async () => {
        if (settings.comment) {
          await github.writeComment(name, {
            status: 'failed',
            commitSha: commit,
            service: SERVICE_NAMES[provider.name],
            error: `${why} (an earlier preview, if there was one, is left as it was)`,
            ...(pull.headRef ? { branch: pull.headRef } : {}),
            ...(pull.title ? { title: pull.title } : {}),
          })
        }
        if (deploymentId !== undefined) await github.finishDeployment(name, deploymentId, 'failure', why)
      })
    }
    throw error
  }

  // A newer run racing on the same PR (no concurrency group) may have replaced this preview already;
  // then its comment is the true one and this run must not overwrite it.
  if (provider.findPreviews && !(await stillStands(provider, outcome, { name, pullRequest: pull.number, repository: `${place.repository.owner}/${place.repository.repo}` }))) {
    say(`Preview ${name}: a newer run's preview replaced this one (${outcome.parts.map((part) => `${part.what} ${part.id}`).join(', ')}) as it came up; that run reports it.`)
    core.setOutput('status', 'superseded')
    return
  }

  // Outputs before anything else can fail: the preview exists now.
  const outputs: Record<string, string> = { ...outcome.outputs, 'preview-name': name, 'image-id': outcome.imageId ?? image.id, digest: image.digest ?? '', 'cache-hit': String(image.cacheHit) }
  if (outcome.sandboxId) outputs['sandbox-id'] = outcome.sandboxId
  if (outcome.snapshotId) outputs['snapshot-id'] = outcome.snapshotId
  outputs['expires-at'] = outcome.expiresAt ? outcome.expiresAt.toISOString() : ''
  outputs['status'] = 'ready'
  for (const [key, value] of Object.entries(outputs)) core.setOutput(key, value)
  for (const line of outcome.leftBehind) warn(`An earlier preview could not be removed (the service's ttl still ends it): ${line}`)
  say(`Preview ${name} is up: ${outcome.parts.map((part) => `${part.what} ${part.id}`).join(', ')}${outcome.replaced.length ? `; replaced ${outcome.replaced.map((part) => `${part.what} ${part.id}`).join(', ')}` : ''}.`)

  let commentUrl = ''
  if (github) {
    await tellGitHub('the preview', async () => {
      if (settings.comment) {
        const written = await github.writeComment(name, {
          status: 'ready',
          commitSha: commit,
          service: SERVICE_NAMES[provider.name],
          ...(outcome.imageId ? { imageId: outcome.imageId } : {}),
          ...(outcome.snapshotId ? { snapshotId: outcome.snapshotId } : {}),
          ...(outcome.sandboxId ? { sandboxId: outcome.sandboxId } : {}),
          ...(outcome.expiresAt ? { expiresAt: outcome.expiresAt } : {}),
          ports: outcome.ports,
          reach: outcome.reach,
          ...(pull.headRef ? { branch: pull.headRef } : {}),
          ...(pull.title ? { title: pull.title } : {}),
        })
        if (written.action !== 'absent') {
          commentUrl = written.htmlUrl
          core.setOutput('comment-id', String(written.commentId))
          core.setOutput('comment-url', written.htmlUrl)
          say(`Preview comment ${written.action}: ${written.htmlUrl}${written.duplicatesRemoved ? ` (${written.duplicatesRemoved} duplicate(s) removed)` : ''}.`)
        }
      }
      if (deploymentId !== undefined) await github.finishDeployment(name, deploymentId, 'success', `Preview ${name} is up`)
    })
  }
  ctx.report.sections.push(previewSummary(name, pull.number, commit, provider, image, outcome, commentUrl))
}

async function stillStands(provider: Provider, outcome: PreviewOutcome, target: PreviewTarget): Promise<boolean> {
  try {
    const live = (await provider.findPreviews?.(target, AbortSignal.timeout(30_000))) ?? []
    return outcome.parts.every((part) => live.some((found) => found.what === part.what && found.id === part.id))
  } catch {
    // Cannot tell: report what this run made.
    return true
  }
}

/**
 * A GitHub write that failed is the step's failure (the workflow asked for it, and a 403 names the
 * permission to add), but only after everything about the preview itself was reported.
 */
async function tellGitHub(what: string, write: () => Promise<void>): Promise<void> {
  try {
    await write()
  } catch (error) {
    throw new Error(`Could not report ${what} on GitHub: ${errorMessage(error)}`, { cause: error })
  }
}

function previewSummary(name: string, pullNumber: number, commit: string, provider: Provider, image: PreparedImage, outcome: PreviewOutcome, commentUrl: string): string {
  const cell = (text: string): string => `\`${text.replace(/`/g, "'")}\``
  const rows: Array<[string, string]> = [
    ['Pull request', `#${pullNumber}`],
    ['Commit', cell(commit.slice(0, 12))],
    ['Service', `${SERVICE_NAMES[provider.name]} (${escapeMarkdownInline(provider.endpoint)})`],
    ['Image', `${cell(outcome.imageId ?? image.id)}${image.cacheHit ? ' (unchanged: nothing was built)' : ''}`],
  ]
  if (outcome.sandboxId) rows.push(['Sandbox', cell(outcome.sandboxId)])
  if (outcome.expiresAt) rows.push(['Expires', outcome.expiresAt.toISOString()])
  if (outcome.ports.length) rows.push(['Open ports', outcome.ports.map(({ port }) => cell(String(port))).join(', ')])
  if (outcome.replaced.length) rows.push(['Replaced', outcome.replaced.map((part) => `${escapeMarkdownInline(part.what)} ${cell(part.id)}`).join(', ')])
  const commentLink = commentUrl ? httpUrl(commentUrl) : undefined
  if (commentLink) rows.push(['Comment', markdownLink('the preview comment', commentLink)])
  return [`### Preview ${cell(name)}: ready`, '', '| | |', '|---|---|', ...rows.map(([label, value]) => `| ${label} | ${value} |`), '', '```sh', outcome.reach.replace(/```/g, "'''"), '```', ''].join('\n')
}
