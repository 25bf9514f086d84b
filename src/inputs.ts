/**
 * The only module that reads workflow inputs. It validates everything before any remote call and
 * returns one typed object; every error names its input, quotes the bad value and says what was expected.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as core from '@actions/core'
import { errorMessage, InputError, MissingTokenError } from './errors.ts'
import { FANOUT_INPUT_DEFAULTS, planFanout, type FanoutPlan } from './fanout/plan.ts'
import { InvalidReferenceError, namesRegistry, parseReference, parseRegistryHost } from './image/reference.ts'
import { MODE_INPUT_DEFAULTS, MODE_INPUT_NAMES, parseModeInputs, type ModeName, type PreviewInputs, type RefreshInputs } from './modes/mode-inputs.ts'
import { parseTogetherInputs, type TogetherInputName, type TogetherSettings } from './providers/together/inputs.ts'
import type { ProviderName } from './state.ts'

export const DEFAULT_CONTREE_URL = 'https://api.tokenfactory.nebius.com/sandboxes'

/**
 * Defaults of the optional inputs, spelled once. action.yml states the same values for the runner
 * (a unit test keeps the two in step); these apply when an input is absent, e.g. in local runs.
 */
export const INPUT_DEFAULTS = {
  provider: 'contree',
  context: '.',
  'no-cache': 'false',
  cache: 'true',
  shell: 'true',
  timeout: '600',
  disposable: 'false',
  'upload-to': '/workspace',
  'fail-on-exit-code': 'true',
  summary: 'true',
  'output-limit': '16MiB',
  'keep-alive': 'false',
  ...FANOUT_INPUT_DEFAULTS,
  ...MODE_INPUT_DEFAULTS,
} as const

/**
 * Inputs that only one provider understands. Set for the other one (to anything but its default, which
 * the runner always passes), they are refused with an error that says so, rather than ignored.
 */
const PROVIDER_ONLY: Readonly<Record<ProviderName, readonly string[]>> = {
  contree: ['project', 'registry', 'registry-username', 'registry-password', 'disposable', 'output-limit', 'secrets', 'cache'],
  together: ['builder-url', 'cache-key', 'ttl', 'snapshot-ttl', 'keep-alive', 'architecture', 'cpu', 'memory', 'start', 'wait-for-port', 'retire-previous'],
}
const TOGETHER_INPUTS: readonly TogetherInputName[] = ['api-url', 'token', 'builder-url', 'cache-key', 'ttl', 'snapshot-ttl', 'keep-alive', 'architecture', 'cpu', 'memory']

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/
const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
/** Queue time allowed on top of `timeout` when no `deadline` is given. */
const DEFAULT_QUEUE_ALLOWANCE_SECONDS = 15 * 60
const MAX_OUTPUT_LIMIT_BYTES = 1024 ** 3

/** How the user named an image; resolution against the service happens later. */
export type ImageSpec =
  | { kind: 'uuid'; uuid: string }
  /** `tag:NAME`, or a bare name in the `image` input: a ConTree tag, never imported. */
  | { kind: 'tag'; tag: string }
  /** A reference that names its registry (`docker.io/library/python:3.12`, `docker://…`): imported. */
  | { kind: 'registry'; reference: string }
  /** A Dockerfile's bare `FROM python:3.12`: a ConTree tag when one exists, else Docker Hub, as `docker build` reads it. */
  | { kind: 'name'; name: string }
  /** Together: a snapshot by id or `@alias`. */
  | { kind: 'snapshot'; ref: string }

export interface BuildInputs {
  /** Absolute path of the Dockerfile. */
  dockerfile: string
  /** Absolute path of the build context. */
  context: string
  buildArgs: Record<string, string>
  /** Stage to build (`--target`); the last stage when absent. */
  target?: string
  /** `RUN --mount=type=secret` values by id; masked as soon as they are read. */
  secrets: Record<string, string>
}

export interface RunInputs {
  command: string
  args?: string[]
  shell: boolean
  env: Record<string, string>
  /** Absolute sandbox path, when set. */
  cwd?: string
  timeoutSeconds: number
  disposable: boolean
}

export interface UploadInputs {
  /** Absolute local paths, each inside `root`. */
  paths: string[]
  /** The workspace; sandbox paths keep their position relative to it. */
  root: string
  /** Absolute sandbox directory the paths are placed under. */
  to: string
}

/** Credentials for one registry host; they are never sent anywhere else. */
export interface RegistryCredentials {
  /** Host as references spell it, e.g. `ghcr.io`, `docker.io`, `localhost:5000`. */
  host: string
  username: string
  password: string
}

export interface Inputs {
  provider: ProviderName
  /** What the step does: `run` (build and/or run), `preview`, `teardown`, `refresh`. */
  mode: ModeName
  /** Mode preview or teardown: the preview's settings (which PR comes from the event). */
  preview?: PreviewInputs
  /** Mode refresh. */
  refresh?: RefreshInputs
  /** Base URL without a trailing slash. */
  apiUrl: string
  token: string
  /** The Together section, when provider is together. */
  together?: TogetherSettings
  /** Many runs from one step (`runs`, or `run` over `shards`), when asked for. */
  fanout?: FanoutPlan
  project?: string
  image?: ImageSpec
  registryCredentials?: RegistryCredentials
  build?: BuildInputs
  tag?: string
  noCache: boolean
  cache: boolean
  run?: RunInputs
  upload?: UploadInputs
  failOnExitCode: boolean
  summary: boolean
  /** Limit for each remote command: the run and every build step. */
  timeoutSeconds: number
  /** Limit for each remote operation from its creation, queue time included. */
  deadlineSeconds: number
  /** Bytes of stdout and of stderr the service keeps per operation (`truncate_output_at`). */
  outputLimitBytes: number
  workspace: string
}

type InputName = keyof typeof INPUT_DEFAULTS | string

function raw(name: InputName): string {
  const value = core.getInput(name)
  if (value !== '') return value
  return (INPUT_DEFAULTS as Record<string, string>)[name] ?? ''
}

function parseBoolean(name: InputName): boolean {
  const value = raw(name)
  if (/^(true|True|TRUE)$/.test(value)) return true
  if (/^(false|False|FALSE)$/.test(value)) return false
  throw new InputError(name, `expected true or false, got "${value}"`)
}

/** Splits a list input on newlines, or on commas when it is a single line. Blank entries are dropped. */
export function splitList(value: string): string[] {
  const lines = value.split(/\r?\n/)
  const items = lines.length === 1 ? value.split(',') : lines
  return items.map((item) => item.trim()).filter((item) => item !== '')
}

/** Parses `KEY=VALUE` lines; the value may contain `=` and keeps its inner spaces. */
export function parseKeyValueLines(name: InputName, value: string, allowCommas: boolean): Record<string, string> {
  const result: Record<string, string> = {}
  const lines = value.split(/\r?\n/)
  const entries = allowCommas && lines.length === 1 ? value.split(',') : lines
  entries.forEach((entry, index) => {
    const line = entry.trim()
    if (line === '' || line.startsWith('#')) return
    const eq = line.indexOf('=')
    const key = eq < 0 ? line : line.slice(0, eq).trim()
    if (eq < 0 || !ENV_KEY_RE.test(key)) {
      throw new InputError(name, `entry ${index + 1} "${line}" is not KEY=VALUE (KEY is letters, digits and _, not starting with a digit)`)
    }
    result[key] = line.slice(eq + 1)
  })
  return result
}

/**
 * `secrets`: one `id=value` per line (a value may contain `=`; multi-line values are not possible).
 * Every value is masked before anything else can print it.
 */
export function parseSecrets(value: string): Record<string, string> {
  const secrets: Record<string, string> = {}
  value.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '') return
    const eq = line.indexOf('=')
    const id = eq < 0 ? '' : line.slice(0, eq).trim()
    const secret = eq < 0 ? '' : line.slice(eq + 1)
    if (secret !== '') core.setSecret(secret)
    if (!/^[A-Za-z0-9_.-]+$/.test(id)) throw new InputError('secrets', `line ${index + 1} is not id=value (the id is letters, digits, '_', '.', '-')`)
    secrets[id] = secret
  })
  return secrets
}

export function parseApiUrl(value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new InputError('api-url', `"${value}" is not a URL; expected e.g. https://contree.example.com`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InputError('api-url', `"${value}" must use http or https`)
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new InputError('api-url', `"${url.origin}${url.pathname}" must not carry credentials, a query or a fragment`)
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '')
}

export function parseTimeout(value: string): number {
  if (!/^\d+$/.test(value.trim())) {
    throw new InputError('timeout', `"${value}" is not a whole number of seconds (expected 1 to ${MAX_TIMEOUT_SECONDS})`)
  }
  const seconds = Number(value.trim())
  if (seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new InputError('timeout', `${seconds} is out of range (expected 1 to ${MAX_TIMEOUT_SECONDS} seconds)`)
  }
  return seconds
}

/**
 * The `image` input. A bare name is a ConTree tag only: importing from a registry needs the registry
 * named (`docker.io/library/python:3.12`, `ghcr.io/org/app:1`, or `docker://python:3.12` for Docker
 * Hub), so that a typo or a missing tag can never silently pull something from Docker Hub.
 */
export function parseImage(value: string): ImageSpec {
  if (UUID_RE.test(value)) return { kind: 'uuid', uuid: value.toLowerCase() }
  if (value.startsWith('tag:')) {
    const tag = value.slice(4)
    if (tag === '' || /\s/.test(tag)) throw new InputError('image', `"${value}" names no tag; expected tag:NAME`)
    return { kind: 'tag', tag }
  }
  if (namesRegistry(value)) return { kind: 'registry', reference: checkedReference(value) }
  if (/\s/.test(value)) throw new InputError('image', `"${value}" is not an image UUID, a ConTree tag or a registry reference (it contains whitespace)`)
  return { kind: 'tag', tag: value }
}

/**
 * A Dockerfile's FROM, read as `docker build` reads it: a bare `python:3.12` is Docker Hub's (unless a
 * ConTree image carries exactly that tag); `tag:NAME` and image UUIDs are ConTree's own.
 */
export function parseBaseImage(value: string): ImageSpec {
  if (UUID_RE.test(value) || value.startsWith('tag:')) return parseImage(value)
  const reference = checkedReference(value)
  return namesRegistry(value) ? { kind: 'registry', reference } : { kind: 'name', name: reference }
}

function checkedReference(value: string): string {
  const reference = value.replace(/^docker:\/\//, '')
  try {
    parseReference(reference)
  } catch (error) {
    const reason = error instanceof InvalidReferenceError ? error.message.replace(/^[^:]*: /, '') : errorMessage(error)
    throw new InputError(
      'image',
      `"${value}" is not an image UUID, tag:NAME, a ConTree tag, or a registry reference like docker.io/library/python:3.12-slim or ghcr.io/org/app@sha256:<digest> (${reason})`,
    )
  }
  return value.startsWith('docker://') && !namesRegistry(reference) ? `docker.io/${reference}` : reference
}

/** `output-limit`: bytes with an optional binary unit (`512KiB`, `16MiB`, `1GiB`; K/M/G accepted too). */
export function parseByteSize(name: InputName, value: string): number {
  const match = /^\s*(\d+)\s*(|B|K|KB|KiB|M|MB|MiB|G|GB|GiB)\s*$/i.exec(value)
  const unit = match?.[2]?.toLowerCase().charAt(0) ?? ''
  const bytes = match ? Number(match[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1) : NaN
  if (!Number.isSafeInteger(bytes) || bytes < 1024 || bytes > MAX_OUTPUT_LIMIT_BYTES) {
    throw new InputError(name, `"${value}" is not a size from 1KiB to 1GiB (e.g. 512KiB, 16MiB)`)
  }
  return bytes
}

function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target)
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))
}

/** Resolves a workspace-relative path and refuses anything (including via symlinks) outside the workspace. */
export function resolveInWorkspace(name: InputName, workspace: string, value: string, expect: 'file' | 'dir' | 'any'): string {
  const resolved = path.resolve(workspace, value)
  if (!isInside(workspace, resolved)) {
    throw new InputError(name, `"${value}" is outside the workspace ${workspace}`)
  }
  let real: string
  let stat: fs.Stats
  try {
    real = fs.realpathSync(resolved)
    stat = fs.statSync(real)
  } catch {
    throw new InputError(name, `"${value}" does not exist in the workspace ${workspace}`)
  }
  if (!isInside(fs.realpathSync(workspace), real)) {
    throw new InputError(name, `"${value}" resolves through a symlink to ${real}, outside the workspace`)
  }
  if (expect === 'file' && !stat.isFile()) throw new InputError(name, `"${value}" is not a file`)
  if (expect === 'dir' && !stat.isDirectory()) throw new InputError(name, `"${value}" is not a directory`)
  return resolved
}

function absoluteSandboxPath(name: InputName, value: string): string {
  if (!value.startsWith('/')) throw new InputError(name, `"${value}" must be an absolute path in the sandbox, e.g. /workspace`)
  return path.posix.normalize(value)
}

function parseArgv(value: string): string[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    parsed = undefined
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((item) => typeof item === 'string')) {
    throw new InputError('run', `with shell: false, expected a JSON array of strings like ["make", "test"], got "${value}"`)
  }
  return parsed as string[]
}

/** Reads and validates every input. Throws InputError; performs no network I/O. */
export function getInputs(env: NodeJS.ProcessEnv = process.env): Inputs {
  const provider = raw('provider')
  if (provider !== 'contree' && provider !== 'together') throw new InputError('provider', `"${provider}" is not supported; expected contree or together`)
  const tokenEnv = provider === 'contree' ? 'CONTREE_TOKEN' : 'TOGETHER_API_KEY'
  const token = core.getInput('token') || env[tokenEnv] || ''
  // Mask first, so that no later message can leak it.
  if (token) core.setSecret(token)
  const registryPassword = core.getInput('registry-password')
  if (registryPassword) core.setSecret(registryPassword)
  const secrets = parseSecrets(core.getInput('secrets'))
  const githubToken = core.getInput('github-token')
  if (githubToken) core.setSecret(githubToken)
  // The provider first: an input of the other service is the plainer mistake to name.
  refuseOtherProvidersInputs(provider)
  const modes = parseModeInputs(Object.fromEntries(MODE_INPUT_NAMES.map((name) => [name, core.getInput(name)])))

  if (!token) {
    throw new MissingTokenError(
      `is required: set the token input (e.g. token: \${{ secrets.${tokenEnv} }}) or the ${tokenEnv} environment variable`,
      modes.failOnMissingToken,
    )
  }
  let together: TogetherSettings | undefined
  let apiUrl: string
  if (provider === 'together') {
    together = parseTogetherInputs(Object.fromEntries(TOGETHER_INPUTS.map((name) => [name, core.getInput(name)])), env)
    const tag = core.getInput('tag')
    // The common `tag` names the result; on Together that is the snapshot's alias.
    if (tag) together.alias = tag
    apiUrl = together.apiUrl
  } else {
    apiUrl = parseApiUrl(core.getInput('api-url') || env.CONTREE_URL || DEFAULT_CONTREE_URL)
  }
  const project = provider === 'contree' ? core.getInput('project') || env.CONTREE_PROJECT || undefined : undefined
  const workspace = path.resolve(env.GITHUB_WORKSPACE || process.cwd())

  const imageValue = core.getInput('image')
  const image = imageValue ? (provider === 'together' ? parseTogetherImage(imageValue) : parseImage(imageValue)) : undefined
  const registryUsername = core.getInput('registry-username')
  if (registryPassword && !registryUsername) {
    throw new InputError('registry-username', 'is required when registry-password is set')
  }
  const registryHost = core.getInput('registry')
  let registryCredentials: RegistryCredentials | undefined
  if (registryUsername) {
    if (!registryHost) {
      throw new InputError('registry', 'is required with registry-username: name the registry host the credentials belong to (e.g. ghcr.io); they are sent nowhere else')
    }
    let host: string
    try {
      host = parseRegistryHost(registryHost)
    } catch {
      throw new InputError('registry', `"${registryHost}" is not a registry host; expected e.g. ghcr.io, docker.io or localhost:5000`)
    }
    registryCredentials = { host, username: registryUsername, password: registryPassword }
  } else if (registryHost) {
    throw new InputError('registry', 'is set but registry-username is not; set both to import from a private registry')
  }

  // A teardown builds nothing, and its workflow often skips the checkout: the build inputs it shares
  // with the preview step are not read, so a Dockerfile that is not there is no error.
  const dockerfileValue = modes.mode === 'teardown' ? '' : core.getInput('dockerfile')
  let build: BuildInputs | undefined
  if (dockerfileValue) {
    build = {
      dockerfile: resolveInWorkspace('dockerfile', workspace, dockerfileValue, 'file'),
      context: resolveInWorkspace('context', workspace, raw('context'), 'dir'),
      buildArgs: parseKeyValueLines('build-args', core.getInput('build-args'), true),
      secrets,
      ...(core.getInput('target') ? { target: core.getInput('target').trim() } : {}),
    }
  } else if (modes.mode !== 'teardown') {
    for (const name of ['build-args', 'target', 'secrets']) {
      if (core.getInput(name)) throw new InputError(name, 'is set but dockerfile is not; set dockerfile to build an image')
    }
  }

  const tag = core.getInput('tag') || undefined
  if (tag !== undefined && /[\s,]/.test(tag)) throw new InputError('tag', `"${tag}" must not contain spaces or commas`)

  const command = core.getInput('run')
  const shell = parseBoolean('shell')
  const env_ = parseKeyValueLines('env', core.getInput('env'), false)
  const cwdValue = core.getInput('cwd')
  const timeoutSeconds = parseTimeout(raw('timeout'))
  const deadlineValue = core.getInput('deadline')
  const deadlineSeconds = deadlineValue ? parseDeadline(deadlineValue, timeoutSeconds) : timeoutSeconds + DEFAULT_QUEUE_ALLOWANCE_SECONDS
  const outputLimitBytes = parseByteSize('output-limit', raw('output-limit'))
  const disposable = parseBoolean('disposable')
  const uploadTo = absoluteSandboxPath('upload-to', raw('upload-to'))
  const uploadList = modes.mode === 'teardown' ? [] : splitList(core.getInput('upload'))
  const upload = uploadList.length
    ? { paths: uploadList.map((item) => resolveInWorkspace('upload', workspace, item, 'any')), root: workspace, to: uploadTo }
    : undefined

  const runs = core.getInput('runs')
  if (modes.mode !== 'run') checkModeShape(modes.mode, { command, runs, shards: core.getInput('shards'), build, image, imageValue, tag, upload })
  if (modes.mode === 'refresh' && provider === 'contree' && !parseBoolean('cache')) {
    // ConTree images carry no labels: without the record, every night would import again and report a change.
    throw new InputError('cache', 'must stay true with mode refresh on ConTree: the Actions cache is where the refresh remembers which digest the tag was made from')
  }
  let run: RunInputs | undefined
  if (modes.mode !== 'run') {
    // No command: what a preview starts is `start`, with the same env and cwd.
    if (modes.preview) {
      modes.preview.env = env_
      if (cwdValue) modes.preview.cwd = absoluteSandboxPath('cwd', cwdValue)
    }
  } else if (command || runs) {
    if (!image && !build) {
      throw new InputError('image', 'is required to run a command: an image UUID, tag:NAME, a registry reference, or set dockerfile to build one')
    }
    const cwd = cwdValue ? absoluteSandboxPath('cwd', cwdValue) : upload ? uploadTo : undefined
    run = {
      ...(!command ? { command: '' } : shell ? { command } : (() => { const argv = parseArgv(command); return { command: argv[0] as string, args: argv.slice(1) } })()),
      shell,
      env: env_,
      ...(cwd ? { cwd } : {}),
      timeoutSeconds,
      disposable,
    }
  } else if (!build && !image) {
    throw new InputError('run', 'is empty and neither dockerfile nor image is set: there is nothing to do')
  } else if (!build && image && image.kind !== 'registry') {
    throw new InputError('run', `is empty: image "${imageValue}" already exists, so there is nothing to do (set run, or dockerfile to build)`)
  }
  const fanout = planFanout(
    { runs, shards: core.getInput('shards'), maxParallel: raw('max-parallel'), failFast: parseBoolean('fail-fast') },
    command && run ? { command: run.command, shell: run.shell, ...(run.args ? { args: run.args } : {}) } : undefined,
    env_,
  )

  return {
    provider,
    mode: modes.mode,
    ...(modes.preview ? { preview: modes.preview } : {}),
    ...(modes.refresh ? { refresh: modes.refresh } : {}),
    apiUrl,
    token,
    ...(together ? { together } : {}),
    ...(fanout ? { fanout } : {}),
    ...(project ? { project } : {}),
    ...(image ? { image } : {}),
    ...(registryCredentials ? { registryCredentials } : {}),
    ...(build ? { build } : {}),
    ...(tag ? { tag } : {}),
    noCache: parseBoolean('no-cache'),
    cache: parseBoolean('cache'),
    ...(run ? { run } : {}),
    ...(upload ? { upload } : {}),
    failOnExitCode: parseBoolean('fail-on-exit-code'),
    summary: parseBoolean('summary'),
    timeoutSeconds,
    deadlineSeconds,
    outputLimitBytes,
    workspace,
  }
}

/**
 * What each mode needs and refuses, so a step that mixes them fails before anything remote is made:
 * a preview builds (or takes) an image and starts `start`, never `run`; a teardown builds nothing;
 * a refresh follows one registry image (or one Dockerfile) under one name.
 */
function checkModeShape(
  mode: Exclude<ModeName, 'run'>,
  given: { command: string; runs: string; shards: string; build: BuildInputs | undefined; image: ImageSpec | undefined; imageValue: string; tag: string | undefined; upload: UploadInputs | undefined },
): void {
  for (const [name, value] of [['run', given.command], ['runs', given.runs], ['shards', given.shards]] as const) {
    if (value) throw new InputError(name, `has no meaning with mode ${mode}${mode === 'preview' ? ': a preview runs `start` (a command left running)' : ''}`)
  }
  if (given.upload && mode !== 'teardown') throw new InputError('upload', `has no meaning with mode ${mode}`)
  if (mode === 'preview' && given.tag) throw new InputError('tag', 'has no meaning with mode preview: the preview is named by preview-name (default pr-<number>)')
  if (mode === 'preview' && !given.build && !given.image) {
    throw new InputError('dockerfile', 'is required with mode preview (or image): the preview runs what it builds')
  }
  if (mode === 'refresh') {
    if (given.build && given.image) throw new InputError('image', 'has no meaning with dockerfile in mode refresh: a refresh follows one source, a registry image or a Dockerfile')
    if (!given.build && (!given.image || given.image.kind !== 'registry')) {
      throw new InputError('image', `with mode refresh must be a registry reference that names its registry (e.g. docker.io/library/python:3.12), or set dockerfile${given.imageValue ? `; not "${given.imageValue}"` : ''}`)
    }
    if (!given.tag) throw new InputError('tag', 'is required with mode refresh: the name (ConTree tag, Together alias) that is moved to the new image')
  }
}

/** An input of the other provider, set to anything but its default, is an error rather than ignored. */
function refuseOtherProvidersInputs(provider: ProviderName): void {
  for (const [owner, names] of Object.entries(PROVIDER_ONLY) as [ProviderName, readonly string[]][]) {
    if (owner === provider) continue
    for (const name of names) {
      const value = core.getInput(name)
      const preset = (INPUT_DEFAULTS as Record<string, string>)[name] ?? ''
      if (value !== '' && value !== preset) {
        throw new InputError(name, `is a ${owner === 'contree' ? 'ConTree' : 'Together Sandbox'} input; it has no meaning with provider: ${provider}`)
      }
    }
  }
}

/**
 * The `image` input on Together: an existing snapshot (its id, or `@alias`), or a registry reference
 * that names its registry, built through the remote builder. A bare name is refused, as on ConTree.
 */
export function parseTogetherImage(value: string): ImageSpec {
  if (UUID_RE.test(value) || /^@\S+$/.test(value)) return { kind: 'snapshot', ref: value }
  if (namesRegistry(value)) return { kind: 'registry', reference: checkedReference(value) }
  throw new InputError(
    'image',
    `"${value}" is not a snapshot id, an @alias, or a registry reference that names its registry (e.g. docker.io/library/${value.replace(/^library\//, '')})`,
  )
}

function parseDeadline(value: string, timeoutSeconds: number): number {
  if (!/^\d+$/.test(value.trim())) {
    throw new InputError('deadline', `"${value}" is not a whole number of seconds`)
  }
  const seconds = Number(value.trim())
  if (seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new InputError('deadline', `${seconds} is out of range (expected 1 to ${MAX_TIMEOUT_SECONDS} seconds)`)
  }
  if (seconds < timeoutSeconds) {
    core.info(`deadline (${seconds} s) is shorter than timeout (${timeoutSeconds} s): operations are cut off at the deadline.`)
  }
  return seconds
}
