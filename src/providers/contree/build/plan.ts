/**
 * A parsed Dockerfile + build args + the base images' configs → the remote steps of every stage the
 * build needs. Each stage starts from its base's config as Docker does: its Env (PATH!) is the
 * environment and the substitution scope, its WorkingDir the first WORKDIR, its User the first USER,
 * its Shell the first SHELL; a stage built FROM another stage starts from that stage's end state.
 *
 * ENV, ARG, WORKDIR, USER, SHELL and COPY/ADD never make a step of their own: they shape the next
 * RUN (its environment, cwd, user, shell, and the file operations done before it runs, in Dockerfile
 * order). Operations still pending at the end of a stage get an implicit commit step that runs no
 * command. Pure apart from the injected source resolver.
 *
 * Docker semantics kept on purpose: RUN text is not substituted by the builder (the shell expands
 * `$VAR` at run time from the environment); ARG values in scope are part of RUN's environment, with
 * ENV taking precedence; build args only set declared ARGs (others are reported as unused), except
 * Docker's predefined proxy args, which reach RUN's environment without a declaration and are left
 * out of cache keys; a base image without PATH gets Docker's default PATH.
 */
import { createHash } from 'node:crypto'
import path from 'node:path'
import type { ContextFile, ContextTree } from '../../../dockerfile/context.ts'
import { absoluteDestination, destinationIsDirectory, parseChmod, parseChown, planCopy, urlDestination, type CopyEntry } from './copy-plan.ts'
import { DockerfileError, parseDockerfile, type Instruction, type ParsedDockerfile } from '../../../dockerfile/dockerfile.ts'
import { MountError, parseMount, type RunMount } from './mounts.ts'
import { parseArgDeclarations, parseNameValues } from '../../../dockerfile/name-values.ts'
import { readStages, type FromSource, type StageGraph, type StageHeader } from '../../../dockerfile/stages.ts'
import { processWord, type Variables } from '../../../dockerfile/substitute.ts'
import { envRecord, formatPlatform, parsePlatform, type ImageConfig, type Platform } from '../../../image/image-config.ts'

export type { RunMount } from './mounts.ts'
export type { CopyEntry } from './copy-plan.ts'

/** Docker's PATH for a RUN in an image whose config has none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
export const DEFAULT_SHELL: readonly string[] = ['/bin/sh', '-c']
/** Where a `RUN <<EOF` script with its own #! is placed for its step. */
export const SCRIPT_DIR = '/.sandbox-action-pipes'

/** A file operation done before a step's command, in Dockerfile order. */
export type FsOp =
  /** WORKDIR: the directory and missing parents, owned by the USER in force (BuildKit), mode 0755. */
  | { kind: 'mkdir'; line: number; path: string; user: string }
  /** COPY/ADD of known entries (context, heredoc, URL). Created parents get the --chown owner. */
  | { kind: 'copy'; line: number; keyword: 'COPY' | 'ADD'; dest: string; chown: string | null; entries: CopyEntry[] }
  /** COPY --from: entries are read from the source's image when the step runs. */
  | {
      kind: 'copy-from'
      line: number
      from: FromSource
      /** Absolute source paths (wildcards allowed). */
      paths: string[]
      dest: string
      destIsDir: boolean
      chown: string | null
      chmod: number | null
    }
  /** ADD of a local archive: unpacked below `dest`. */
  | { kind: 'unpack'; line: number; archive: ContextFile; dest: string; chown: string | null; chmod: number | null }

/**
 * A here-document run as the whole command: a script placed for the RUN only. BuildKit mounts it under
 * /dev/pipes; a sandbox's /dev may be read-only, so it goes under its own directory, removed afterwards.
 */
export interface ScriptFile {
  path: string
  bytes: Uint8Array
  sha256: string
}

export interface BuildStep {
  /** 0-based position in its stage's steps. */
  index: number
  line: number
  /** Display text, e.g. "RUN make test" (RUN text as written; other instructions after substitution). */
  instruction: string
  /** 'commit' = implicit step that only applies pending file operations. */
  kind: 'run' | 'commit'
  /** The process to run (SHELL already applied to shell form); absent for a commit. */
  argv?: string[]
  /** The process environment: image env (config Env + ENV), ARGs in scope, proxy build args. */
  env: Record<string, string>
  cwd: string
  /** USER in force as written after substitution; "" = root. */
  user: string
  ops: FsOp[]
  mounts: RunMount[]
  scripts: ScriptFile[]
  network: 'default' | 'none'
  /** The image's environment so far (config Env + ENV); part of the cache key. */
  imageEnv: Record<string, string>
  /** Effective values of the ARGs declared in the stage; part of the cache key. */
  buildArgs: Record<string, string>
  shell: string[]
}

export interface BuildNote {
  line: number
  keyword: string
  note: string
}

/** The config an image built by a stage carries, in image-config terms (what `docker run` starts from). */
export type StageConfig = ImageConfig

export interface PlannedStage {
  index: number
  name?: string
  line: number
  base: { kind: 'image'; ref: string } | { kind: 'stage'; index: number }
  steps: BuildStep[]
  final: StageConfig
}

export interface BuildPlan {
  /** Stages to build, dependencies first; the last one is the target. */
  stages: PlannedStage[]
  notes: BuildNote[]
  unusedBuildArgs: string[]
  graph: StageGraph
}

/** Resolves COPY/ADD local sources (already substituted) to what they put in the image. */
export type SourceResolver = (sources: readonly string[], at: { keyword: string; line: number }) => Promise<ContextTree> | ContextTree

export interface PlanOptions {
  buildArgs?: Readonly<Record<string, string>>
  target?: string
  /** The platform the sandbox service runs (FROM --platform must match it). */
  platform: Platform
  resolveSources: SourceResolver
  /** The config of a FROM image (by its reference as written after substitution); undefined = unknown. */
  baseConfig: (ref: string) => ImageConfig | undefined
  /** An already read stage graph (so the caller can resolve the images it names first). */
  graph?: StageGraph
  /** The runner's OS, for Docker's Windows mode rule. */
  hostPlatform?: NodeJS.Platform
}

/** Docker's predefined ARGs: usable without a declaration, never reported unused. */
export const PREDEFINED_ARGS: ReadonlySet<string> = new Set([
  'HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy',
  'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy',
])

const PLATFORM_ARGS: ReadonlySet<string> = new Set([
  'TARGETPLATFORM', 'TARGETOS', 'TARGETARCH', 'TARGETVARIANT', 'BUILDPLATFORM', 'BUILDOS', 'BUILDARCH', 'BUILDVARIANT',
])

const METADATA_ONLY: ReadonlySet<string> = new Set(['LABEL', 'EXPOSE', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'MAINTAINER'])

const COPY_FLAGS: Readonly<Record<string, ReadonlySet<string>>> = {
  COPY: new Set(['chown', 'chmod', 'link', 'from']),
  ADD: new Set(['chown', 'chmod', 'link', 'checksum']),
}

const URL_SOURCE = /^https?:\/\//i

export async function createBuildPlan(dockerfile: ParsedDockerfile, options: PlanOptions): Promise<BuildPlan> {
  const graph = options.graph ?? readStages(dockerfile, { ...(options.buildArgs ? { buildArgs: options.buildArgs } : {}), ...(options.target ? { target: options.target } : {}), platform: options.platform })
  const notes: BuildNote[] = []
  const planned = new Map<number, PlannedStage>()
  for (const index of graph.needed) {
    const header = graph.stages[index] as StageHeader
    planned.set(index, await planStage(dockerfile, header, graph, planned, notes, options))
  }
  const buildArgs = options.buildArgs ?? {}
  const unusedBuildArgs = Object.keys(buildArgs)
    .filter((name) => !graph.declared.has(name) && !PREDEFINED_ARGS.has(name))
    .sort()
  return { stages: graph.needed.map((index) => planned.get(index) as PlannedStage), notes, unusedBuildArgs, graph }
}

async function planStage(
  dockerfile: ParsedDockerfile,
  header: StageHeader,
  graph: StageGraph,
  planned: ReadonlyMap<number, PlannedStage>,
  notes: BuildNote[],
  options: PlanOptions,
): Promise<PlannedStage> {
  const { fileName, escapeChar } = dockerfile
  const buildArgs = options.buildArgs ?? {}
  const fail = (line: number | null, message: string, cause?: unknown): never => {
    throw new DockerfileError(line, message, fileName, cause === undefined ? undefined : { cause })
  }
  const unsupported = (line: number, message: string): never => {
    throw new DockerfileError(line, message, fileName, { unsupported: true })
  }
  /** Runs `work`, turning substitution and copy-rule errors into errors that carry the line. */
  const at = <T>(instruction: Instruction, work: () => T): T => {
    try {
      return work()
    } catch (error) {
      if (error instanceof DockerfileError) throw error
      const message = (error as Error).message
      const text = message.startsWith(`${instruction.keyword} `) ? message : `${instruction.keyword}: ${message}`
      throw new DockerfileError(instruction.line, text, fileName, { cause: error, unsupported: error instanceof MountError && /not supported/.test(message) })
    }
  }

  if (header.base.kind === 'scratch') {
    unsupported(
      header.line,
      'FROM scratch is not supported on this service: every remote operation starts from an existing image and the service has no empty one. Start from a minimal image instead (e.g. busybox, or gcr.io/distroless/static for a static binary)',
    )
  }
  if (header.platform !== undefined) {
    const wanted = parsePlatform(header.platform)
    const service = formatPlatform(options.platform)
    if (!wanted || formatPlatform(wanted) !== service) {
      unsupported(header.line, `FROM --platform=${header.platform}: the sandbox service runs ${service} only and cannot build for another platform`)
    }
  }
  const base: PlannedStage['base'] = header.base.kind === 'stage' ? { kind: 'stage', index: header.base.index } : { kind: 'image', ref: (header.base as { ref: string }).ref }
  const start: ImageConfig =
    base.kind === 'stage' ? (planned.get(base.index) as PlannedStage).final : (options.baseConfig(base.ref) ?? { env: [], workingDir: '', user: '', entrypoint: null, cmd: null, shell: null, onBuild: [] })
  // Docker runs the base image's ONBUILD triggers first, as if written right after FROM; they are
  // consumed there (an image built FROM this one does not inherit them).
  const triggers = onBuildTriggers(start.onBuild, header.line, fileName)
  const onBuild: string[] = []

  const env: Record<string, string> = envRecord(start.env)
  if (!Object.hasOwn(env, 'PATH')) env.PATH = DEFAULT_PATH
  const stageArgs = new Map<string, string | undefined>()
  const steps: BuildStep[] = []
  let ops: FsOp[] = []
  let workdir = start.workingDir === '' ? '/' : path.posix.resolve('/', start.workingDir)
  let user = start.user
  let shell: string[] = start.shell && start.shell.length > 0 ? [...start.shell] : [...DEFAULT_SHELL]
  let entrypoint = start.entrypoint
  let cmd = start.cmd
  let lastOpLine = header.line

  const definedArgs = (): Record<string, string> => {
    const out: Record<string, string> = {}
    for (const [name, value] of stageArgs) if (value !== undefined) out[name] = value
    return out
  }
  const variables = (): Variables => ({ ...definedArgs(), ...env })
  const word = (text: string): string => processWord(text, variables(), escapeChar)

  const pushStep = (
    line: number,
    instruction: string,
    kind: BuildStep['kind'],
    run: { argv?: string[]; mounts: RunMount[]; scripts: ScriptFile[]; network: BuildStep['network'] },
  ): void => {
    const stageValues = definedArgs()
    const proxies: Record<string, string> = {}
    for (const name of PREDEFINED_ARGS) {
      const value = buildArgs[name]
      if (value !== undefined && Object.hasOwn(buildArgs, name)) proxies[name] = value
    }
    const step: BuildStep = {
      index: steps.length,
      line,
      instruction,
      kind,
      env: { ...proxies, ...stageValues, ...env },
      cwd: workdir,
      user,
      ops,
      mounts: run.mounts,
      scripts: run.scripts,
      network: run.network,
      imageEnv: { ...env },
      buildArgs: stageValues,
      shell: [...shell],
    }
    if (run.argv) step.argv = run.argv
    steps.push(step)
    ops = []
  }

  for (const instruction of [...triggers, ...header.instructions]) {
    const { keyword, line } = instruction
    switch (keyword) {
      case 'ARG': {
        const declarations = at(instruction, () => parseArgDeclarations(instruction.args, escapeChar))
        for (const declaration of declarations) {
          const name = at(instruction, () => word(declaration.name))
          let value: string | undefined
          if (Object.hasOwn(buildArgs, name) && !PLATFORM_ARGS.has(name)) value = buildArgs[name]
          else if (declaration.value !== undefined) value = at(instruction, () => word(declaration.value ?? ''))
          // A stage ARG without a default takes the value of the global ARG of the same name.
          else value = graph.globalArgs.get(name)
          stageArgs.set(name, value)
        }
        break
      }
      case 'ENV': {
        const pairs = at(instruction, () => parseNameValues('ENV', instruction.args, escapeChar))
        // Every pair of one ENV sees the variables as they were before the instruction (Docker).
        const snapshot = variables()
        const updates = pairs.map((pair) =>
          at(instruction, () => [processWord(pair.name, snapshot, escapeChar), processWord(pair.value ?? '', snapshot, escapeChar)] as const),
        )
        for (const [name, value] of updates) {
          if (name === '') fail(line, 'ENV names can not be blank')
          env[name] = value
        }
        break
      }
      case 'WORKDIR': {
        const dir = at(instruction, () => word(instruction.args))
        if (dir === '') fail(line, 'WORKDIR requires exactly one argument')
        workdir = path.posix.resolve(workdir, dir)
        ops.push({ kind: 'mkdir', line, path: workdir, user })
        lastOpLine = line
        break
      }
      case 'USER': {
        const value = at(instruction, () => word(instruction.args))
        if (value === '') fail(line, 'USER requires an argument')
        user = value
        break
      }
      case 'SHELL': {
        if (instruction.form !== 'exec' || !instruction.argv || instruction.argv.length === 0) {
          fail(line, 'SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/bash", "-c"]')
        }
        shell = [...(instruction.argv ?? [])]
        break
      }
      case 'CMD':
      case 'ENTRYPOINT': {
        const argv = instruction.form === 'exec' ? [...(instruction.argv ?? [])] : [...shell, instruction.args]
        if (keyword === 'CMD') cmd = argv
        else {
          entrypoint = argv
          // Docker: ENTRYPOINT resets a CMD inherited from the base image.
          cmd = null
        }
        break
      }
      case 'RUN': {
        planRun(instruction)
        break
      }
      case 'COPY':
      case 'ADD': {
        await planCopyInstruction(instruction)
        lastOpLine = line
        break
      }
      case 'ONBUILD': {
        const trigger = instruction.args.split(/\s+/, 1)[0]?.toUpperCase() ?? ''
        if (['ONBUILD', 'FROM', 'MAINTAINER', ''].includes(trigger)) fail(line, `ONBUILD ${trigger || 'needs an instruction'}${trigger ? ' is not allowed as a trigger' : ''}`)
        onBuild.push(instruction.args)
        notes.push({ line, keyword, note: 'kept in the built image config; runs in a later build FROM it' })
        break
      }
      default: {
        if (METADATA_ONLY.has(keyword)) notes.push({ line, keyword, note: 'image metadata only: no effect on the files or the build' })
        else fail(line, `unknown instruction "${keyword}"`)
      }
    }
  }
  if (ops.length > 0) {
    pushStep(lastOpLine, `commit ${describeOps(ops)}`, 'commit', { mounts: [], scripts: [], network: 'default' })
  }
  const final: StageConfig = {
    env: Object.entries(env).map(([name, value]) => `${name}=${value}`),
    workingDir: workdir,
    user,
    entrypoint,
    cmd,
    shell: sameArray(shell, DEFAULT_SHELL) ? null : shell,
    onBuild,
  }
  const stage: PlannedStage = { index: header.index, line: header.line, base, steps, final }
  if (header.name !== undefined) stage.name = header.name
  return stage

  function planRun(instruction: Instruction): void {
    const { line } = instruction
    for (const flag of Object.keys(instruction.flags)) {
      if (flag !== 'mount' && flag !== 'network') {
        unsupported(line, flag === 'security' ? 'RUN --security is not supported: the sandbox decides what a command may do' : `RUN --${flag} is not supported`)
      }
    }
    const network = instruction.flags.network === undefined ? 'default' : at(instruction, () => word(instruction.flags.network ?? ''))
    if (network !== 'default' && network !== 'none' && network !== 'host') fail(line, `RUN --network=${network}: expected default, none or host`)
    const named = [...(header.sources.get(line) ?? [])]
    const mounts = (instruction.flagValues.mount ?? []).map((value) => {
      const mount = at(instruction, () => parseMount(word(value), (target) => path.posix.resolve(workdir, target)))
      // from= names were resolved to stages or images when the stages were read, in the same order.
      if (mount.type === 'bind' && mount.from.kind === 'stage-or-image') return { ...mount, from: named.shift() ?? mount.from }
      return mount
    })
    const scripts: ScriptFile[] = []
    let argv: string[]
    if (instruction.form === 'exec') {
      argv = [...(instruction.argv ?? [])]
      if (argv.length === 0) fail(line, 'RUN requires at least one argument')
    } else {
      if (instruction.args === '') fail(line, 'RUN requires at least one argument')
      const heredocs = instruction.heredocs
      const only = heredocs.length === 1 && /^\d*<<-?["']?[^\s"']+["']?$/.test(instruction.args.trim())
      if (only) {
        // BuildKit: a RUN that is one here-document runs it as a script, with its own #! if it has one.
        const doc = heredocs[0] as NonNullable<(typeof heredocs)[0]>
        if (doc.content.startsWith('#!')) {
          const bytes = new TextEncoder().encode(doc.content)
          const script: ScriptFile = { path: `${SCRIPT_DIR}/${doc.name}`, bytes, sha256: createHash('sha256').update(bytes).digest('hex') }
          scripts.push(script)
          argv = [script.path]
        } else argv = [...shell, doc.content]
      } else if (heredocs.length > 0) {
        // Otherwise the shell reads the here-documents itself: it gets the text exactly as written.
        argv = [...shell, `${instruction.args}\n${heredocs.map((doc) => `${doc.content}${doc.name}\n`).join('')}`]
      } else argv = [...shell, instruction.args]
    }
    pushStep(line, `RUN ${instruction.args}`, 'run', { argv, mounts, scripts, network: network === 'none' ? 'none' : 'default' })
  }

  async function planCopyInstruction(instruction: Instruction): Promise<void> {
    const { keyword, line } = instruction
    const copyKeyword = keyword as 'COPY' | 'ADD'
    for (const flag of Object.keys(instruction.flags)) {
      if (!COPY_FLAGS[keyword]?.has(flag)) unsupported(line, `${keyword} --${flag} is not supported`)
    }
    const flagValue = (name: string): string | undefined => {
      const raw = instruction.flags[name]
      return raw === undefined ? undefined : at(instruction, () => word(raw))
    }
    const chown = at(instruction, () => parseChown(flagValue('chown'), keyword)) ?? null
    const chmod = at(instruction, () => parseChmod(flagValue('chmod'), keyword)) ?? null
    const checksum = flagValue('checksum')
    const rawWords = instruction.form === 'exec' ? (instruction.argv ?? []) : instruction.args.split(/\s+/).filter((w) => w !== '')
    const heredocNames = new Set(instruction.heredocs.map((doc) => doc.name))
    const isHeredocWord = (w: string): string | undefined => {
      const match = /^<<-?(["']?)([^\s"']+)\1$/.exec(w)
      return match && heredocNames.has(match[2] ?? '') ? match[2] : undefined
    }
    const words = at(instruction, () => rawWords.map((w) => (isHeredocWord(w) !== undefined ? w : word(w))))
    if (words.length < 2) fail(line, `${keyword} requires at least two arguments, but only ${words.length === 1 ? 'one was' : 'none were'} provided. Destination could not be determined.`)
    const destWord = words.at(-1) ?? ''
    const dest = absoluteDestination(destWord, workdir)
    const destIsDir = destinationIsDirectory(destWord)
    const sources = words.slice(0, -1)

    const from = instruction.flags.from !== undefined ? header.sources.get(line)?.[0] : undefined
    if (from) {
      ops.push({ kind: 'copy-from', line, from, paths: sources.map((source) => path.posix.resolve('/', source)), dest, destIsDir, chown, chmod })
      if (sources.length > 1 && !destIsDir) fail(line, `When using ${keyword} with more than one source file, the destination must be a directory and end with a /`)
      return
    }

    const entries: CopyEntry[] = []
    const docs = sources.map((source) => isHeredocWord(source)).filter((name): name is string => name !== undefined)
    if (docs.length > 0) {
      if (docs.length > 1 && !destIsDir) fail(line, `When using ${keyword} with more than one source file, the destination must be a directory and end with a /`)
      for (const name of docs) {
        const doc = instruction.heredocs.find((d) => d.name === name)
        if (!doc) continue
        const text = doc.expand ? at(instruction, () => expandHeredoc(doc.content, variables(), escapeChar)) : doc.content
        const bytes = new TextEncoder().encode(text)
        entries.push({
          path: destIsDir || sources.length > 1 ? path.posix.join(dest, name) : dest,
          type: 'file',
          mode: chmod ?? 0o644,
          content: { kind: 'inline', bytes, sha256: createHash('sha256').update(bytes).digest('hex') },
        })
      }
    }
    const others = sources.filter((source) => isHeredocWord(source) === undefined)
    const urls = copyKeyword === 'ADD' ? others.filter((source) => URL_SOURCE.test(source)) : []
    const locals = others.filter((source) => !urls.includes(source))
    for (const source of others) {
      if (copyKeyword === 'ADD' && (/^git@/.test(source) || /^git:\/\//.test(source) || (URL_SOURCE.test(source) && /\.git(#.*)?$/.test(source)))) {
        unsupported(line, `ADD of a git repository (${source}) is not supported; clone it in a RUN step instead`)
      }
    }
    if (checksum !== undefined && (urls.length === 0 || locals.length > 0)) fail(line, 'ADD --checksum can only be used with URL sources')
    let expected: string | undefined
    if (checksum !== undefined) {
      const match = /^sha256:([0-9a-f]{64})$/i.exec(checksum)
      if (!match) fail(line, `ADD --checksum="${checksum}": expected sha256:<64 hex digits>`)
      expected = match?.[1]?.toLowerCase()
    }

    if (locals.length > 0) {
      let tree: ContextTree
      try {
        tree = await options.resolveSources(locals, { keyword, line })
      } catch (error) {
        return fail(line, `${keyword}: ${(error as Error).message}`, error)
      }
      if (copyKeyword === 'ADD') {
        // Docker unpacks a local tar archive (plain or compressed) into the destination directory.
        for (const archive of tree.files.filter((file) => file.archive)) ops.push({ kind: 'unpack', line, archive, dest, chown, chmod })
        tree = { ...tree, files: tree.files.filter((file) => !file.archive) }
      }
      entries.push(
        ...at(instruction, () =>
          planCopy({ keyword: copyKeyword, sources, dest: destWord, workdir, tree, ...(chmod !== null ? { chmod } : {}), ...(options.hostPlatform ? { hostPlatform: options.hostPlatform } : {}) }),
        ),
      )
    }
    for (const url of urls) {
      const target = at(instruction, () => urlDestination(url, destWord, workdir, others.length > 1))
      // Docker gives downloaded files mode 0600 unless --chmod says otherwise.
      const entry: CopyEntry = { path: target, type: 'file', mode: chmod ?? 0o600, content: { kind: 'url', url, ...(expected ? { checksum: expected } : {}) } }
      if (!destIsDir && others.length === 1) entry.intoDirName = urlFileName(url)
      entries.push(entry)
    }
    if (entries.length > 0 || docs.length > 0) ops.push({ kind: 'copy', line, keyword: copyKeyword, dest: destIsDir ? dest : path.posix.dirname(dest), chown, entries })
  }
}

/** A base image's ONBUILD triggers as instructions at the FROM line (COPY --from in a trigger is refused). */
function onBuildTriggers(texts: readonly string[], line: number, fileName: string): Instruction[] {
  if (texts.length === 0) return []
  let parsed: ParsedDockerfile
  try {
    parsed = parseDockerfile(texts.join('\n'), { fileName })
  } catch (error) {
    throw new DockerfileError(line, `FROM: the base image's ONBUILD triggers cannot be read: ${(error as Error).message}`, fileName)
  }
  return parsed.instructions.map((instruction) => {
    if (['FROM', 'ONBUILD', 'MAINTAINER'].includes(instruction.keyword)) throw new DockerfileError(line, `FROM: the base image has an ONBUILD ${instruction.keyword} trigger, which Docker refuses`, fileName)
    if (instruction.flags.from !== undefined) throw new DockerfileError(line, 'FROM: the base image has an ONBUILD COPY --from trigger, which the action does not run', fileName, { unsupported: true })
    return { ...instruction, line, original: `ONBUILD ${instruction.original}` }
  })
}

/** Expands `$VAR` in a COPY heredoc body as BuildKit does: variables only, quotes kept as text. */
function expandHeredoc(content: string, variables: Variables, escapeChar: string): string {
  return content.replace(/\$(?:\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)/g, (match) => processWord(match, variables, escapeChar))
}

function urlFileName(url: string): string {
  try {
    return path.posix.basename(decodeURIComponent(new URL(url).pathname)) || 'download'
  } catch {
    return 'download'
  }
}

function describeOps(ops: readonly FsOp[]): string {
  const lines = [...new Set(ops.map((op) => op.line))]
  return `file operations of line${lines.length === 1 ? '' : 's'} ${lines.join(', ')}`
}

function sameArray(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i])
}
