// Executes one build for real: unpack the context, read the Dockerfile, run each stage in its own root
// (FROM, ARG, ENV, WORKDIR, USER, SHELL, COPY/ADD of local files, RUN through runInRoot; other instructions
// are accepted and ignored), reuse layers of earlier builds with the same cache_key, and log BuildKit-style
// plain progress with a little colour. The result is an image tree stored under the build's image_ref. Stage
// trees hold files of the image's users, so everything that touches them goes through the root-fs
// operations (app.fs); the unpacked context is the emulator's own.
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, stat } from 'node:fs/promises'
import { constants as osConstants } from 'node:os'
import { join, posix } from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import type { CopySource } from './build-copy.ts'
import { LineSplitter, type BuildLog } from './build-log.ts'
import type { BuildRecord } from './builds.ts'
import { DockerfileError, keyValues, parseDockerfile, word, words, type Instruction, type Lookup } from './dockerfile.ts'
import { parseReference } from './image-ref.ts'
import { DEFAULT_PATH, type ImageConfig, type ImageStore } from './image-store.ts'
import { chainKey, type LayerCache } from './layer-cache.ts'
import { resolveInRoot } from './root-path.ts'
import type { TogetherFs } from './rootfs/client.ts'
import { failureKind } from './rootfs/failure.ts'
import type { RootRunner } from './run-in-root.ts'
import { ContextError, extractContext } from './tar-reader.ts'
import type { Identity } from './users.ts'

export interface BuilderDeps {
  images: ImageStore
  fs: TogetherFs
  runner: RootRunner
  cache: LayerCache
  counters: { runStepsExecuted: number; stepsCached: number }
  /** `registry/namespace` the image refs start with. */
  repositoryPrefix: string
}

/** A failure that ends the build with `failed to solve: <message>`. */
class SolveError extends Error {}
/** The build was stopped from outside (DELETE, or an injected stream error). */
class Stopped extends Error {}

const BLUE = '\x1b[34m'
const CYAN = '\x1b[36m'
const RED = '\x1b[31m'
const RESET = '\x1b[0m'
const IGNORED = new Set(['LABEL', 'EXPOSE', 'CMD', 'ENTRYPOINT', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'ONBUILD', 'MAINTAINER'])
const FS_STEPS = new Set(['RUN', 'COPY', 'ADD', 'WORKDIR'])

/** Numbered progress vertices (`#3 …`), as BuildKit's plain output has them. */
class Progress {
  private next = 1
  private readonly log: BuildLog
  current: Vertex | null = null
  constructor(log: BuildLog) {
    this.log = log
  }
  vertex(title: string, colour = true): Vertex {
    const vertex = new Vertex(this.log, this.next++)
    this.log.append(colour ? `${BLUE}#${vertex.n} ${title}${RESET}` : `#${vertex.n} ${title}`)
    this.current = vertex
    return vertex
  }
}

class Vertex {
  readonly n: number
  private readonly log: BuildLog
  private readonly started = Date.now()
  constructor(log: BuildLog, n: number) {
    this.log = log
    this.n = n
  }
  private elapsed(): number {
    return (Date.now() - this.started) / 1000
  }
  line(text: string): void {
    this.log.append(`#${this.n} ${text}`)
  }
  output(text: string): void {
    this.log.append(`#${this.n} ${this.elapsed().toFixed(3)} ${text}`)
  }
  done(): void {
    this.log.append(`${CYAN}#${this.n} DONE ${this.elapsed().toFixed(1)}s${RESET}`)
  }
  cached(): void {
    this.log.append(`${CYAN}#${this.n} CACHED${RESET}`)
  }
  error(message: string): void {
    this.log.append(`${RED}#${this.n} ERROR: ${message}${RESET}`)
  }
}

interface Stage {
  index: number
  name: string | null
  from: Instruction
  body: Instruction[]
}

interface StageResult {
  root: string
  config: ImageConfig
  /** Chained key of the stage's last step: what COPY --from of it depends on. */
  key: string
}

function splitStages(instructions: Instruction[]): { globalArgs: Instruction[]; stages: Stage[] } {
  const globalArgs: Instruction[] = []
  const stages: Stage[] = []
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      stages.push({ index: stages.length, name: null, from: instruction, body: [] })
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') throw new DockerfileError(`no build stage in current context (line ${instruction.line}: ${instruction.keyword} before FROM)`)
      globalArgs.push(instruction)
    } else {
      ;(stages.at(-1) as Stage).body.push(instruction)
    }
  }
  if (stages.length === 0) throw new DockerfileError('the Dockerfile has no FROM instruction')
  return { globalArgs, stages }
}

export async function runBuild(deps: BuilderDeps, build: BuildRecord): Promise<void> {
  const progress = new Progress(build.log)
  const checkStop = () => {
    if (build.stop) throw new Stopped(build.stop.kind)
  }
  try {
    const contextDir = join(build.workDir, 'context')
    await mkdir(contextDir, { recursive: true })

    const definition = progress.vertex(`[internal] load build definition from ${build.dockerfile}`, false)
    let context
    try {
      context = await extractContext(build.contextFile, contextDir)
    } catch (error) {
      if (error instanceof ContextError) throw new SolveError(error.message)
      throw error
    }
    const resolvedDockerfile = await resolveInRoot(contextDir, '/' + build.dockerfile, { followLast: true }).catch(() => null)
    const found = resolvedDockerfile ? await stat(resolvedDockerfile.hostPath).catch(() => null) : null
    if (!resolvedDockerfile || !found?.isFile()) {
      throw new SolveError(`failed to read dockerfile: open ${build.dockerfile}: no such file or directory`)
    }
    const text = await readFile(resolvedDockerfile.hostPath, 'utf8')
    definition.line(`transferring dockerfile: ${Buffer.byteLength(text)}B done`)
    definition.done()
    checkStop()

    let parsed
    try {
      parsed = parseDockerfile(text)
    } catch (error) {
      throw new SolveError(`dockerfile parse error: ${(error as Error).message}`)
    }
    const { escape } = parsed
    const { globalArgs, stages } = (() => {
      try {
        return splitStages(parsed.instructions)
      } catch (error) {
        throw new SolveError(`dockerfile parse error: ${(error as Error).message}`)
      }
    })()

    const consumed = new Set<string>()
    const globals = new Map<string, string | undefined>()
    for (const instruction of globalArgs) {
      for (const [name, fallback] of keyValues(instruction, (n) => globals.get(n), escape)) {
        consumed.add(name)
        globals.set(name, build.buildArgs[name] ?? fallback)
      }
    }

    const contextVertex = progress.vertex('[internal] load build context', false)
    contextVertex.line(`transferring context: ${context.bytes}B in ${context.files} files done`)
    contextVertex.done()

    const results: StageResult[] = []
    const named = new Map<string, number>()
    const multiStage = stages.length > 1
    for (const stage of stages) {
      checkStop()
      const fromWords = words(stage.from.args, (n) => globals.get(n), escape)
      const baseText = fromWords[0]
      if (!baseText) throw new SolveError(`FROM requires an image (line ${stage.from.line})`)
      if (fromWords.length === 3 && fromWords[1]?.toUpperCase() === 'AS') stage.name = (fromWords[2] as string).toLowerCase()
      else if (fromWords.length !== 1) throw new SolveError(`dockerfile parse error on line ${stage.from.line}: FROM requires either one or three arguments`)
      const result = await runStage(deps, build, progress, stage, {
        baseText,
        escape,
        globals,
        consumed,
        results,
        named,
        label: (k: number, total: number) => (multiStage ? `[${stage.name ?? `stage-${stage.index}`} ${k}/${total}]` : `[${k}/${total}]`),
        checkStop,
      })
      results.push(result)
      if (stage.name) named.set(stage.name, stage.index)
    }

    checkStop()
    const final = results.at(-1) as StageResult
    const exporting = progress.vertex('exporting to image')
    exporting.line('exporting layers done')
    const imageRef = `${deps.repositoryPrefix}/${build.name}:${build.tag}`
    const dir = deps.images.allocateDir()
    await deps.fs.call('moveTree', { from: final.root, to: dir })
    deps.images.put(imageRef, dir, final.config)
    exporting.line(`writing image sha256:${createHash('sha256').update(final.key).digest('hex')} done`)
    if (build.nydus) exporting.line('converting to nydus image done')
    exporting.line(`naming to ${imageRef} done`)
    exporting.done()
    const unused = Object.keys(build.buildArgs).filter((name) => !consumed.has(name))
    if (unused.length > 0) build.log.append(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`)
    build.imageRef = imageRef
    build.state = 'succeeded'
    build.log.finish({ done: true })
  } catch (error) {
    const stop = build.stop
    if (stop) {
      build.state = stop.kind === 'cancelled' ? 'cancelled' : 'failed'
      build.error = stop.kind === 'cancelled' ? 'build cancelled' : stop.message
    } else {
      build.state = 'failed'
      const message =
        error instanceof SolveError || error instanceof DockerfileError || failureKind(error) === 'build' ? (error as Error).message : `emulator: ${(error as Error).message}`
      build.error = `failed to solve: ${message}`
      progress.current?.error(message)
    }
    build.log.finish({ error: build.error as string })
  } finally {
    build.current = null
    await deps.fs.call('removeTree', { path: build.workDir }).catch(() => undefined)
    await rm(build.contextFile, { force: true }).catch(() => undefined)
  }
}

interface StageInputs {
  baseText: string
  escape: string
  globals: Map<string, string | undefined>
  consumed: Set<string>
  results: StageResult[]
  named: Map<string, number>
  label(k: number, total: number): string
  checkStop(): void
}

async function runStage(deps: BuilderDeps, build: BuildRecord, progress: Progress, stage: Stage, inputs: StageInputs): Promise<StageResult> {
  const { escape, checkStop } = inputs
  const root = join(build.workDir, 'stages', String(stage.index))
  await mkdir(posix.dirname(root), { recursive: true })
  const total = 1 + stage.body.filter((instruction) => FS_STEPS.has(instruction.keyword)).length
  let step = 1

  // The base: an earlier stage, scratch, or an image (seeded, built, or pulled from a loopback registry).
  let config: ImageConfig
  let key: string
  const earlier = inputs.named.get(inputs.baseText.toLowerCase())
  if (earlier !== undefined) {
    const base = inputs.results[earlier] as StageResult
    await deps.fs.call('copyTree', { from: base.root, to: root })
    config = structuredClone(base.config)
    key = chainKey('FROM', `stage:${base.key}`)
    progress.vertex(`${inputs.label(step, total)} FROM ${inputs.baseText}`).done()
  } else if (inputs.baseText === 'scratch') {
    await deps.fs.call('makeDirectory', { path: root, mode: 0o755 })
    config = { env: {}, workdir: '/', user: 'root' }
    key = chainKey('FROM', 'scratch')
  } else {
    const reference = parseReference(inputs.baseText)
    if (!reference) throw new SolveError(`failed to parse stage name "${inputs.baseText}": invalid reference format`)
    const metadata = progress.vertex(`[internal] load metadata for ${reference.normalized}`, false)
    let image
    try {
      image = await deps.images.resolve(inputs.baseText, build.abort.signal)
    } catch (error) {
      checkStop()
      throw new SolveError((error as Error).message)
    }
    metadata.done()
    const fromVertex = progress.vertex(`${inputs.label(step, total)} FROM ${reference.normalized}`)
    await deps.fs.call('copyTree', { from: image.dir, to: root })
    fromVertex.done()
    config = structuredClone(image.config)
    key = chainKey('FROM', image.identity)
  }

  const env = new Map(Object.entries(config.env))
  const args = new Map<string, string | undefined>()
  let workdir = config.workdir
  let user = config.user
  let shell = ['/bin/sh', '-c']
  let treeKey = key
  let materialized = key
  const lookup: Lookup = (name) => env.get(name) ?? args.get(name)

  /** A step that changes files: served from the layer cache, or executed and then stored there. */
  const fsStep = async (title: string, stepKey: string, execute: (vertex: Vertex) => Promise<void>) => {
    checkStop()
    step += 1
    const vertex = progress.vertex(`${inputs.label(step, total)} ${title}`)
    if (deps.cache.get(build.cacheKey, stepKey)) {
      vertex.cached()
      build.stepsCached += 1
      deps.counters.stepsCached += 1
      treeKey = stepKey
      return
    }
    if (materialized !== treeKey) {
      await deps.fs.call('removeTree', { path: root })
      await deps.fs.call('copyTree', { from: deps.cache.get(build.cacheKey, treeKey) as string, to: root })
      materialized = treeKey
    }
    await execute(vertex)
    checkStop()
    vertex.done()
    await deps.cache.put(build.cacheKey, stepKey, root)
    treeKey = materialized = stepKey
  }

  for (const instruction of stage.body) {
    checkStop()
    const title = instruction.original.replace(/\s+/g, ' ')
    switch (instruction.keyword) {
      case 'ARG':
        for (const [name, fallback] of keyValues(instruction, lookup, escape)) {
          inputs.consumed.add(name)
          const value = build.buildArgs[name] ?? fallback ?? inputs.globals.get(name)
          args.set(name, value)
          key = chainKey(key, 'ARG', name, value ?? '\0unset')
        }
        break
      case 'ENV':
        for (const [name, value] of keyValues(instruction, lookup, escape)) {
          env.set(name, value ?? '')
          key = chainKey(key, 'ENV', name, value ?? '')
        }
        break
      case 'USER':
        user = word(instruction.args, lookup, escape)
        if (user === '') throw new SolveError(`USER requires an argument (line ${instruction.line})`)
        key = chainKey(key, 'USER', user)
        break
      case 'SHELL':
        if (!instruction.json || instruction.json.length === 0) throw new SolveError(`SHELL requires the arguments to be in JSON form (line ${instruction.line})`)
        shell = instruction.json
        key = chainKey(key, 'SHELL', JSON.stringify(shell))
        break
      case 'WORKDIR': {
        workdir = posix.resolve(workdir, word(instruction.args, lookup, escape))
        key = chainKey(key, 'WORKDIR', workdir)
        const target = workdir
        const owner = user
        await fsStep(title, key, async () => {
          // As BuildKit does: the directories WORKDIR creates belong to the USER of that point.
          const identity = await userOf(deps, root, owner)
          await deps.fs.call('makeDirectories', { root, path: target, owner: { uid: identity.uid, gid: identity.gid } })
        })
        break
      }
      case 'RUN': {
        const ignoredFlags = [...instruction.flags.keys()].map((flag) => `[warning] RUN --${flag} is ignored by the emulator`)
        const argv = instruction.json ?? [...shell, instruction.args]
        if (argv.length === 0 || argv[0] === '') throw new SolveError(`RUN requires a command (line ${instruction.line})`)
        const runEnv: Record<string, string> = {}
        for (const [name, value] of args) if (value !== undefined) runEnv[name] = value
        for (const [name, value] of env) runEnv[name] = value
        runEnv.PATH ??= DEFAULT_PATH
        key = chainKey(key, 'RUN', JSON.stringify(argv), JSON.stringify(runEnv), user, workdir)
        const runUser = user
        const runDir = workdir
        await fsStep(title, key, (vertex) => {
          for (const warning of ignoredFlags) vertex.line(warning)
          return runStep(deps, build, root, vertex, { argv, env: runEnv, user: runUser, workdir: runDir })
        })
        break
      }
      case 'COPY':
      case 'ADD': {
        const from = instruction.flags.get('from')
        for (const flag of instruction.flags.keys()) {
          if (!['chown', 'chmod', 'from', 'link'].includes(flag)) throw new SolveError(`${instruction.keyword} --${flag} is not supported by the emulator (line ${instruction.line})`)
        }
        const operands = instruction.json ?? words(instruction.args, lookup, escape)
        if (operands.length < 2) throw new SolveError(`${instruction.keyword} requires at least two arguments (line ${instruction.line})`)
        const patterns = operands.slice(0, -1)
        const rawDest = operands.at(-1) as string
        const dest = posix.isAbsolute(rawDest) ? rawDest : posix.join(workdir, rawDest) + (rawDest.endsWith('/') ? '/' : '')
        let base = join(build.workDir, 'context')
        let fromIdentity = 'context'
        if (from !== undefined) {
          const stageIndex = /^\d+$/.test(from) ? Number(from) : inputs.named.get(from.toLowerCase())
          if (stageIndex !== undefined && inputs.results[stageIndex]) {
            base = (inputs.results[stageIndex] as StageResult).root
            fromIdentity = `stage:${(inputs.results[stageIndex] as StageResult).key}`
          } else {
            let image
            try {
              image = await deps.images.resolve(from, build.abort.signal)
            } catch (error) {
              checkStop()
              throw new SolveError((error as Error).message)
            }
            base = image.dir
            fromIdentity = image.identity
          }
        }
        if (instruction.keyword === 'ADD' && patterns.some((pattern) => /^[a-z][a-z0-9+.-]*:\/\//i.test(pattern))) {
          throw new SolveError(`ADD from a URL is not supported by the emulator (line ${instruction.line})`)
        }
        const sources = await deps.fs.call('matchCopySources', { base, patterns })
        if (instruction.keyword === 'ADD') {
          for (const source of sources) {
            if (!source.isDir && (await deps.fs.call('looksLikeArchive', { path: source.hostPath }))) {
              throw new SolveError(`ADD of a local archive (${source.shown}) is not unpacked by the emulator (line ${instruction.line})`)
            }
          }
        }
        const chown = instruction.flags.get('chown')
        const chmod = instruction.flags.get('chmod')
        if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) throw new SolveError(`invalid --chmod ${chmod} (line ${instruction.line})`)
        key = chainKey(key, instruction.keyword, JSON.stringify(patterns), dest, chown ?? '', chmod ?? '', fromIdentity, await deps.fs.call('hashCopySources', { sources }))
        await fsStep(title, key, async () => {
          await copyStep(deps, root, sources, dest, chown === undefined ? undefined : word(chown, lookup, escape), chmod)
        })
        break
      }
      default:
        if (!IGNORED.has(instruction.keyword)) {
          throw new SolveError(`dockerfile parse error on line ${instruction.line}: unknown instruction: ${instruction.keyword}`)
        }
    }
  }

  if (materialized !== treeKey) {
    await deps.fs.call('removeTree', { path: root })
    await deps.fs.call('copyTree', { from: deps.cache.get(build.cacheKey, treeKey) as string, to: root })
  }
  return { root, config: { env: Object.fromEntries(env), workdir, user }, key }
}

/** `user[:group]` through the stage's own /etc/passwd and /etc/group; a name it does not know fails the build. */
async function userOf(deps: BuilderDeps, root: string, spec: string): Promise<Identity> {
  try {
    return await deps.fs.call('resolveUser', { root, spec })
  } catch (error) {
    throw new SolveError((error as Error).message)
  }
}

async function copyStep(deps: BuilderDeps, root: string, sources: CopySource[], dest: string, chown: string | undefined, chmod: string | undefined): Promise<void> {
  let owner: { uid: number; gid: number } | null = null
  if (chown !== undefined) {
    const identity = await userOf(deps, root, chown)
    owner = { uid: identity.uid, gid: identity.gid }
  }
  await deps.fs.call('copyIntoRoot', { root, sources, dest, owner, mode: chmod === undefined ? null : Number.parseInt(chmod, 8) })
}

interface RunInputs {
  argv: string[]
  env: Record<string, string>
  user: string
  workdir: string
}

async function runStep(deps: BuilderDeps, build: BuildRecord, root: string, vertex: Vertex, run: RunInputs): Promise<void> {
  const identity = await userOf(deps, root, run.user)
  await deps.fs.call('makeDirectories', { root, path: run.workdir })
  const env = { HOME: identity.home, ...run.env }
  const proc = await deps.runner.runInRoot(root, {
    cwd: run.workdir,
    command: run.argv[0] as string,
    args: run.argv.slice(1),
    env,
    uid: identity.uid,
    gid: identity.gid,
    stdin: false,
  })
  build.current = proc
  // A stop that arrived while the process was being set up must still reach it.
  if (build.stop) proc.kill()
  deps.counters.runStepsExecuted += 1
  build.runsExecuted += 1
  const lines = new LineSplitter((line) => vertex.output(line))
  const decoders = { out: new StringDecoder('utf8'), err: new StringDecoder('utf8') }
  proc.stdout.on('data', (chunk: Buffer) => lines.push(decoders.out.write(chunk)))
  proc.stderr.on('data', (chunk: Buffer) => lines.push(decoders.err.write(chunk)))
  const status = await proc.exited
  // Like a container's end: whatever the step left running dies with it, which also closes the pipes.
  proc.kill()
  await proc.closed
  lines.push(decoders.out.end() + decoders.err.end())
  lines.flush()
  build.current = null
  if (build.stop) throw new Stopped(build.stop.kind)
  const shown = run.argv.join(' ')
  if (status.startError) throw new SolveError(`process "${shown}" could not be started: ${status.startError}`)
  if (status.code !== 0) {
    const code = status.code ?? 128 + (status.signal ? (osConstants.signals[status.signal] ?? 0) : 0)
    throw new SolveError(`process "${shown}" did not complete successfully: exit code: ${code}`)
  }
}
