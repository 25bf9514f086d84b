/**
 * The inputs of the modes beside `run` (PR previews, their teardown, the scheduled refresh), read from
 * a plain record (input name → raw value, '' when unset) so that inputs.ts hands them over without this
 * module reading the runner itself. Syntax only: which pull request a run is for comes from the event
 * (pull-request.ts), once the mode starts.
 */
import { InputError } from '../errors.ts'

export type ModeName = 'run' | 'preview' | 'teardown' | 'refresh'
const MODES: readonly ModeName[] = ['run', 'preview', 'teardown', 'refresh']

/** Defaults, spelled once (action.yml states the same; a unit test keeps them in step). */
export const MODE_INPUT_DEFAULTS = {
  mode: 'run',
  comment: 'true',
  deployment: 'false',
  'fail-on-missing-token': 'false',
  'retire-previous': 'false',
} as const

export type ModeInputName =
  | keyof typeof MODE_INPUT_DEFAULTS
  | 'pr-number'
  | 'sha'
  | 'preview-name'
  | 'github-token'
  | 'github-api-url'
  | 'start'
  | 'wait-for-port'

export const MODE_INPUT_NAMES: readonly ModeInputName[] = [
  'mode',
  'comment',
  'deployment',
  'fail-on-missing-token',
  'retire-previous',
  'pr-number',
  'sha',
  'preview-name',
  'github-token',
  'github-api-url',
  'start',
  'wait-for-port',
]

export interface PreviewInputs {
  /** The preview's name; `pr-<number>` when unset. */
  name?: string
  /** Overrides the event's pull request (a `workflow_run` or `workflow_dispatch` run names it). */
  pullRequest?: number
  /** Overrides the event's head commit. */
  sha?: string
  /** For the comment and the deployment; empty: neither is written. */
  githubToken: string
  /** The GitHub REST API base, when not GITHUB_API_URL (which GHES sets itself). */
  githubApiUrl?: string
  comment: boolean
  deployment: boolean
  /** A shell command started in the preview and left running. */
  start?: string
  waitForPort?: number
}

export interface RefreshInputs {
  retirePrevious: boolean
}

export interface ModeInputs {
  mode: ModeName
  /** With mode preview or teardown. */
  preview?: PreviewInputs
  /** With mode refresh. */
  refresh?: RefreshInputs
  failOnMissingToken: boolean
}

/** Letters, digits, `.`, `_`, `-`; it is a comment marker, a tag and a tag value at once. */
const PREVIEW_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/

export function parseModeInputs(raw: Partial<Record<ModeInputName, string>>): ModeInputs {
  const value = (name: ModeInputName): string => (raw[name] ?? '').trim() || ((MODE_INPUT_DEFAULTS as Record<string, string>)[name] ?? '')
  const mode = value('mode') as ModeName
  if (!MODES.includes(mode)) throw new InputError('mode', `"${value('mode')}" is not a mode; expected ${MODES.join(', ')}`)
  const failOnMissingToken = parseBoolean('fail-on-missing-token', value('fail-on-missing-token'))
  const result: ModeInputs = { mode, failOnMissingToken }

  const previewOnly: ModeInputName[] = ['pr-number', 'sha', 'preview-name', 'start', 'wait-for-port']
  if (mode === 'preview' || mode === 'teardown') {
    const preview: PreviewInputs = {
      githubToken: value('github-token'),
      comment: parseBoolean('comment', value('comment')),
      deployment: parseBoolean('deployment', value('deployment')),
    }
    if (value('preview-name')) preview.name = parsePreviewName(value('preview-name'))
    if (value('pr-number')) preview.pullRequest = parsePullNumber(value('pr-number'))
    if (value('sha')) preview.sha = parseSha(value('sha'))
    if (value('github-api-url')) preview.githubApiUrl = parseHttpUrl('github-api-url', value('github-api-url'))
    if (value('start')) preview.start = (raw.start ?? '').trim()
    if (value('wait-for-port')) preview.waitForPort = parsePort(value('wait-for-port'))
    result.preview = preview
  } else {
    for (const name of previewOnly) {
      if (value(name)) throw new InputError(name, `is an input of mode preview (and teardown); it has no meaning with mode ${mode}`)
    }
  }
  if (mode === 'refresh') result.refresh = { retirePrevious: parseBoolean('retire-previous', value('retire-previous')) }
  else if (value('retire-previous') !== 'false') throw new InputError('retire-previous', `is an input of mode refresh; it has no meaning with mode ${mode}`)
  return result
}

export function parsePreviewName(text: string): string {
  if (!PREVIEW_NAME.test(text)) {
    throw new InputError('preview-name', `"${text}" is not a preview name: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. pr-7 or docs-pr-7)`)
  }
  return text
}

function parseBoolean(name: ModeInputName, text: string): boolean {
  if (/^(true|True|TRUE)$/.test(text)) return true
  if (/^(false|False|FALSE)$/.test(text)) return false
  throw new InputError(name, `expected true or false, got "${text}"`)
}

function parsePullNumber(text: string): number {
  const number = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN
  if (!(number >= 1)) throw new InputError('pr-number', `"${text}" is not a pull request number (a whole number from 1)`)
  return number
}

function parseSha(text: string): string {
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(text)) throw new InputError('sha', `"${text}" is not a full commit SHA (40 hexadecimal digits)`)
  return text.toLowerCase()
}

function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN
  if (!(port >= 1 && port <= 65_535)) throw new InputError('wait-for-port', `"${text}" is not a TCP port (1 to 65535)`)
  return port
}

function parseHttpUrl(name: ModeInputName, text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new InputError(name, `"${text}" is not a URL; expected e.g. https://github.example.com/api/v3`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError(name, `"${text}" must use http or https`)
  if (url.username || url.password || url.search || url.hash) throw new InputError(name, `"${url.origin}${url.pathname}" must not carry credentials, a query or a fragment`)
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '')
}
