/**
 * A parsed Dockerfile + build args → the remote steps. Single stage only. ENV, ARG, WORKDIR, USER,
 * SHELL and COPY/ADD never make a step of their own: they shape the next RUN (its environment, cwd,
 * user, shell, and the files placed before it runs). Files still pending at the end get an implicit
 * commit step. Pure apart from the injected source resolver.
 *
 * Docker semantics kept on purpose: RUN text is not substituted by the builder (the shell expands
 * `$VAR` at run time from the environment); ARG values in scope are part of RUN's environment, with
 * ENV taking precedence; build args only set declared ARGs (others are reported as unused), except
 * Docker's predefined proxy args, which reach RUN's environment without a declaration and are left
 * out of cache keys.
 */
import path from 'node:path'
import type { ContextFile } from './context.ts'
import { parseChmod, parseChown, planCopy, urlDestination, type PlacedFile } from './copy-plan.ts'
import { DockerfileError, type Instruction, type ParsedDockerfile } from './dockerfile.ts'
import { parseArgDeclarations, parseNameValues } from './name-values.ts'
import { DEFAULT_SHELL, buildRunSpec, type RunSpec } from './run-command.ts'
import { processWord, type Variables } from './substitute.ts'

export type { RunSpec } from './run-command.ts'

export interface PendingFile extends PlacedFile {
  /** Absolute path in the sandbox. */
  path: string
}

export interface UrlFile {
  url: string
  /** Absolute path in the sandbox. */
  dest: string
  mode: string
  uid: number
  gid: number
  /** `ADD --checksum=sha256:<hex>`: the expected sha256 (hex) of the download. */
  checksum?: string
}

export interface BuildStep {
  /** 0-based position in `steps`. */
  index: number
  line: number
  /** Display text, e.g. "RUN make test" (RUN text as written; other instructions after substitution). */
  instruction: string
  /** 'commit' = implicit step that only places pending files. */
  kind: 'run' | 'commit'
  run?: RunSpec
  /** The process environment to send: ARG values in scope, then ENV on top (plus proxy build args). */
  env: Record<string, string>
  cwd: string
  user?: string
  files: PendingFile[]
  urlFiles: UrlFile[]
  /** ENV values only (the image's environment as built so far); part of the cache key. */
  imageEnv: Record<string, string>
  /** Effective values of the ARGs declared in the stage; part of the cache key. */
  buildArgs: Record<string, string>
  /** SHELL in force. */
  shell: string[]
}

export interface BuildNote {
  line: number
  keyword: string
  note: string
}

export interface BuildPlan {
  from: { ref: string; line: number; alias?: string }
  steps: BuildStep[]
  notes: BuildNote[]
  unusedBuildArgs: string[]
  /** The state at the end of the file: what `docker run` of the image would start with. */
  final: { cwd: string; env: Record<string, string>; user?: string }
}

/** Resolves COPY/ADD local sources (already substituted) to context files. */
export type SourceResolver = (
  sources: readonly string[],
  at: { keyword: string; line: number },
) => Promise<readonly ContextFile[]> | readonly ContextFile[]

export interface PlanOptions {
  buildArgs?: Readonly<Record<string, string>>
  resolveSources: SourceResolver
}

/** Docker's predefined ARGs: usable without a declaration, never reported unused. */
export const PREDEFINED_ARGS: ReadonlySet<string> = new Set([
  'HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy',
  'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy',
])

const NO_REMOTE_EFFECT: ReadonlySet<string> = new Set([
  'LABEL', 'EXPOSE', 'CMD', 'ENTRYPOINT', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'MAINTAINER', 'ONBUILD',
])

const COPY_FLAGS: Readonly<Record<string, ReadonlySet<string>>> = {
  COPY: new Set(['chown', 'chmod', 'link']),
  ADD: new Set(['chown', 'chmod', 'link', 'checksum']),
}

const URL_SOURCE = /^https?:\/\//i

export async function createBuildPlan(dockerfile: ParsedDockerfile, options: PlanOptions): Promise<BuildPlan> {
  const { fileName, escapeChar } = dockerfile
  const buildArgs = options.buildArgs ?? {}
  const fail = (line: number | null, message: string, cause?: unknown): never => {
    throw new DockerfileError(line, message, fileName, cause === undefined ? undefined : { cause })
  }
  /** Runs `work`, turning substitution and copy-rule errors into errors that carry the line. */
  const at = <T>(instruction: Instruction, work: () => T): T => {
    try {
      return work()
    } catch (error) {
      if (error instanceof DockerfileError) throw error
      const message = (error as Error).message
      return fail(instruction.line, message.startsWith(`${instruction.keyword} `) ? message : `${instruction.keyword}: ${message}`, error)
    }
  }

  const declared = new Set<string>()
  const globalArgs = new Map<string, string | undefined>()
  const stageArgs = new Map<string, string | undefined>()
  const env: Record<string, string> = {}
  const notes: BuildNote[] = []
  const steps: BuildStep[] = []
  const pendingFiles = new Map<string, PendingFile>()
  const pendingUrls = new Map<string, UrlFile>()
  let from: BuildPlan['from'] | undefined
  let workdir = '/'
  let user: string | undefined
  let shell: string[] = [...DEFAULT_SHELL]
  let lastCopyLine = 0

  const definedArgs = (args: Map<string, string | undefined>): Record<string, string> => {
    const out: Record<string, string> = {}
    for (const [name, value] of args) if (value !== undefined) out[name] = value
    return out
  }
  const variables = (): Variables => (from ? { ...definedArgs(stageArgs), ...env } : definedArgs(globalArgs))
  const word = (text: string): string => processWord(text, variables(), escapeChar)

  const pushStep = (line: number, instruction: string, kind: BuildStep['kind'], run: RunSpec): void => {
    const stageValues = definedArgs(stageArgs)
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
      run,
      env: { ...proxies, ...stageValues, ...env },
      cwd: workdir,
      files: [...pendingFiles.values()],
      urlFiles: [...pendingUrls.values()],
      imageEnv: { ...env },
      buildArgs: stageValues,
      shell: [...shell],
    }
    if (user !== undefined) step.user = user
    steps.push(step)
    pendingFiles.clear()
    pendingUrls.clear()
  }

  for (const instruction of dockerfile.instructions) {
    const { keyword, line } = instruction
    if (!from && keyword !== 'ARG' && keyword !== 'FROM') {
      fail(line, `${keyword} cannot come before FROM (only ARG may precede FROM)`)
    }
    switch (keyword) {
      case 'FROM': {
        if (from) fail(line, `multi-stage builds are not supported: second FROM (the first is on line ${from.line})`)
        for (const flag of Object.keys(instruction.flags)) {
          if (flag !== 'platform') fail(line, `FROM: unknown flag --${flag}`)
          notes.push({ line, keyword, note: `--platform=${instruction.flags[flag]} ignored: the sandbox service decides the platform` })
        }
        const words = instruction.args.split(/\s+/).filter((w) => w !== '')
        if (!(words.length === 1 || (words.length === 3 && words[1]?.toLowerCase() === 'as'))) {
          fail(line, 'FROM requires either one or three arguments (FROM image [AS name])')
        }
        const ref = at(instruction, () => word(words[0] ?? ''))
        if (ref === '') fail(line, `FROM: the image reference "${words[0]}" is empty after substitution`)
        if (ref.toLowerCase() === 'scratch') fail(line, 'FROM scratch is not supported: the sandbox needs a base image')
        from = { ref, line }
        if (words[2] !== undefined) from.alias = words[2]
        break
      }
      case 'ARG': {
        const declarations = at(instruction, () => parseArgDeclarations(instruction.args, escapeChar))
        for (const declaration of declarations) {
          const name = at(instruction, () => word(declaration.name))
          declared.add(name)
          let value: string | undefined
          if (Object.hasOwn(buildArgs, name)) value = buildArgs[name]
          else if (declaration.value !== undefined) value = at(instruction, () => word(declaration.value ?? ''))
          // A stage ARG without a default takes the value of the global ARG of the same name.
          else if (from) value = globalArgs.get(name)
          ;(from ? stageArgs : globalArgs).set(name, value)
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
      case 'RUN': {
        const flags = Object.keys(instruction.flags)
        if (flags.length > 0) fail(line, `RUN --${flags[0]} is not supported by the remote builder`)
        if (instruction.form === 'exec') {
          const argv = instruction.argv ?? []
          if (argv.length === 0) fail(line, 'RUN requires at least one argument')
          pushStep(line, `RUN ${instruction.args}`, 'run', buildRunSpec({ form: 'exec', argv }, shell, user))
        } else {
          if (instruction.args === '') fail(line, 'RUN requires at least one argument')
          pushStep(line, `RUN ${instruction.args}`, 'run', buildRunSpec({ form: 'shell', text: instruction.args }, shell, user))
        }
        break
      }
      case 'COPY':
      case 'ADD': {
        await planCopyInstruction(instruction)
        break
      }
      default: {
        if (NO_REMOTE_EFFECT.has(keyword)) notes.push({ line, keyword, note: 'no remote effect' })
        else fail(line, `unknown instruction "${keyword}"`)
      }
    }
  }

  if (!from) fail(null, dockerfile.instructions.length === 0 ? 'the Dockerfile has no instructions' : 'no FROM instruction')
  if (pendingFiles.size > 0 || pendingUrls.size > 0) {
    const count = pendingFiles.size + pendingUrls.size
    pushStep(lastCopyLine, `commit ${count} pending file${count === 1 ? '' : 's'}`, 'commit', { command: ':', shell: true })
  }
  const unusedBuildArgs = Object.keys(buildArgs)
    .filter((name) => !declared.has(name) && !PREDEFINED_ARGS.has(name))
    .sort()
  return { from: from as BuildPlan['from'], steps, notes, unusedBuildArgs, final: { cwd: workdir, env: { ...env }, ...(user ? { user } : {}) } }

  async function planCopyInstruction(instruction: Instruction): Promise<void> {
    const { keyword, line } = instruction
    const copyKeyword = keyword as 'COPY' | 'ADD'
    for (const flag of Object.keys(instruction.flags)) {
      if (flag === 'from') fail(line, `COPY --from is not supported: multi-stage builds and copying from images are not available remotely`)
      if (!COPY_FLAGS[keyword]?.has(flag)) fail(line, `${keyword} --${flag} is not supported`)
    }
    const flagValue = (name: string): string | undefined => {
      const raw = instruction.flags[name]
      return raw === undefined ? undefined : at(instruction, () => word(raw))
    }
    const chown = flagValue('chown')
    const chmod = flagValue('chmod')
    const checksum = flagValue('checksum')
    const rawWords = instruction.form === 'exec' ? (instruction.argv ?? []) : instruction.args.split(/\s+/).filter((w) => w !== '')
    const words = at(instruction, () => rawWords.map((w) => word(w)))
    if (words.length < 2) fail(line, `${keyword} requires at least two arguments, but only ${words.length === 1 ? 'one was' : 'none were'} provided. Destination could not be determined.`)
    const dest = words.at(-1) ?? ''
    const sources = words.slice(0, -1)
    const urls = copyKeyword === 'ADD' ? sources.filter((source) => URL_SOURCE.test(source)) : []
    const locals = sources.filter((source) => !urls.includes(source))
    for (const source of sources) {
      if (copyKeyword === 'ADD' && (/^git@/.test(source) || /^git:\/\//.test(source) || (URL_SOURCE.test(source) && /\.git(#.*)?$/.test(source)))) {
        fail(line, `ADD of a git repository (${source}) is not supported; clone it in a RUN step instead`)
      }
    }
    if (checksum !== undefined && (urls.length === 0 || locals.length > 0)) fail(line, 'ADD --checksum can only be used with URL sources')
    let expected: string | undefined
    if (checksum !== undefined) {
      const match = /^sha256:([0-9a-f]{64})$/i.exec(checksum)
      if (!match) fail(line, `ADD --checksum="${checksum}": expected sha256:<64 hex digits>`)
      expected = match?.[1]?.toLowerCase()
    }

    let placed: Record<string, PlacedFile> = {}
    if (locals.length > 0) {
      let files: readonly ContextFile[]
      try {
        files = await options.resolveSources(locals, { keyword, line })
      } catch (error) {
        return fail(line, `${keyword}: ${(error as Error).message}`, error)
      }
      if (copyKeyword === 'ADD') {
        const archive = files.find((file) => file.archive)
        if (archive) {
          fail(
            line,
            `ADD of a local tar archive ("${archive.relPath}") is not supported: Docker would unpack it. Use COPY, then RUN tar -xf in the image`,
          )
        }
      }
      placed = at(instruction, () =>
        planCopy({ keyword: copyKeyword, sources, dest, workdir, files, ...(chown !== undefined && { chown }), ...(chmod !== undefined && { chmod }) }),
      )
    }
    for (const [target, file] of Object.entries(placed)) {
      pendingUrls.delete(target)
      pendingFiles.delete(target)
      pendingFiles.set(target, { path: target, ...file })
    }
    if (urls.length > 0) {
      const owner = at(instruction, () => parseChown(chown, keyword))
      // Docker gives downloaded files mode 0600 unless --chmod says otherwise.
      const mode = at(instruction, () => parseChmod(chmod, keyword)) ?? '0600'
      for (const url of urls) {
        const target = at(instruction, () => urlDestination(url, dest, workdir, sources.length > 1))
        pendingFiles.delete(target)
        pendingUrls.delete(target)
        const urlFile: UrlFile = { url, dest: target, mode, uid: owner.uid, gid: owner.gid }
        if (expected !== undefined) urlFile.checksum = expected
        pendingUrls.set(target, urlFile)
      }
    }
    lastCopyLine = line
  }
}
