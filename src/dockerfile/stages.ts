/**
 * The stages of a Dockerfile and which of them a build needs: every `FROM … [AS name]` starts a
 * stage; a stage depends on the stage its FROM names and on those its `COPY --from` and
 * `RUN --mount=…,from=` name. Only the target (the `target` input, else the last stage) and what it
 * depends on are built, in dependency order, as BuildKit does. Also the global ARG scope, which
 * FROM lines see, with BuildKit's automatic platform ARGs (TARGETPLATFORM, BUILDARCH, …).
 */
import { DockerfileError, type Instruction, type ParsedDockerfile } from './dockerfile.ts'
import { parseArgDeclarations } from './name-values.ts'
import { processWord } from './substitute.ts'
import { formatPlatform, type Platform } from '../image/image-config.ts'

export type StageBase = { kind: 'image'; ref: string } | { kind: 'stage'; index: number } | { kind: 'scratch' }

/** Where COPY --from / a bind mount's from= takes files: an earlier stage or an image. */
export type FromSource = { kind: 'stage'; index: number } | { kind: 'image'; ref: string }

export interface StageHeader {
  index: number
  /** The `AS` name, lower-case (stage names are case-insensitive). */
  name?: string
  line: number
  base: StageBase
  /** FROM --platform after substitution, when given. */
  platform?: string
  /** The stage's instructions after its FROM. */
  instructions: Instruction[]
  /** Stages and images this stage takes files from, by instruction line. */
  sources: Map<number, FromSource[]>
}

export interface StageGraph {
  stages: StageHeader[]
  /** Index of the stage the build produces. */
  target: number
  /** Indexes of the stages to build, dependencies first; the target is last. */
  needed: number[]
  /** ARGs before the first FROM (undefined: declared without a value); platform ARGs included. */
  globalArgs: Map<string, string | undefined>
  /** Names declared by any ARG, for the unused build-args warning. */
  declared: Set<string>
}

export interface StageOptions {
  buildArgs?: Readonly<Record<string, string>>
  /** Stage name (or index) to build; the last stage when absent. */
  target?: string
  /** The platform the build runs on and for (the sandbox service's). */
  platform: Platform
}

/** BuildKit's automatic platform ARGs for a build that runs on, and targets, one platform. */
export function platformArgs(platform: Platform): Record<string, string> {
  const text = formatPlatform(platform)
  return {
    TARGETPLATFORM: text,
    TARGETOS: platform.os,
    TARGETARCH: platform.architecture,
    TARGETVARIANT: platform.variant ?? '',
    BUILDPLATFORM: text,
    BUILDOS: platform.os,
    BUILDARCH: platform.architecture,
    BUILDVARIANT: platform.variant ?? '',
  }
}

export function readStages(dockerfile: ParsedDockerfile, options: StageOptions): StageGraph {
  const { fileName, escapeChar } = dockerfile
  const buildArgs = options.buildArgs ?? {}
  const fail = (line: number | null, message: string): never => {
    throw new DockerfileError(line, message, fileName)
  }
  const globalArgs = new Map<string, string | undefined>(Object.entries(platformArgs(options.platform)))
  const declared = new Set<string>()
  const stages: StageHeader[] = []
  const defined = (): Record<string, string> => {
    const out: Record<string, string> = {}
    for (const [name, value] of globalArgs) if (value !== undefined) out[name] = value
    return out
  }
  const substitute = (instruction: Instruction, text: string): string => {
    try {
      return processWord(text, defined(), escapeChar)
    } catch (error) {
      return fail(instruction.line, `${instruction.keyword}: ${(error as Error).message}`)
    }
  }

  for (const instruction of dockerfile.instructions) {
    const { keyword, line } = instruction
    const current = stages.at(-1)
    if (keyword === 'FROM') {
      for (const flag of Object.keys(instruction.flags)) if (flag !== 'platform') fail(line, `FROM: unknown flag --${flag}`)
      const words = instruction.args.split(/\s+/).filter((w) => w !== '')
      if (!(words.length === 1 || (words.length === 3 && words[1]?.toLowerCase() === 'as'))) {
        fail(line, 'FROM requires either one or three arguments (FROM image [AS name])')
      }
      const ref = substitute(instruction, words[0] ?? '')
      if (ref === '') fail(line, `FROM: the image reference "${words[0]}" is empty after substitution`)
      const name = words[2]?.toLowerCase()
      if (name !== undefined) {
        if (!/^[a-z][a-z0-9-_.]*$/.test(name)) fail(line, `invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`)
        if (stages.some((stage) => stage.name === name)) fail(line, `duplicate stage name "${words[2]}"`)
      }
      const byName = stages.find((stage) => stage.name !== undefined && stage.name === ref.toLowerCase())
      const base: StageBase = byName ? { kind: 'stage', index: byName.index } : ref.toLowerCase() === 'scratch' ? { kind: 'scratch' } : { kind: 'image', ref }
      const header: StageHeader = { index: stages.length, line, base, instructions: [], sources: new Map() }
      if (name !== undefined) header.name = name
      const platform = instruction.flags.platform
      if (platform !== undefined) header.platform = substitute(instruction, platform)
      stages.push(header)
      continue
    }
    if (!current) {
      if (keyword !== 'ARG') fail(line, `${keyword} cannot come before FROM (only ARG may precede FROM)`)
      let declarations
      try {
        declarations = parseArgDeclarations(instruction.args, escapeChar)
      } catch (error) {
        return fail(line, `ARG: ${(error as Error).message}`)
      }
      for (const declaration of declarations) {
        const name = substitute(instruction, declaration.name)
        declared.add(name)
        if (Object.hasOwn(buildArgs, name)) globalArgs.set(name, buildArgs[name])
        else globalArgs.set(name, declaration.value === undefined ? globalArgs.get(name) : substitute(instruction, declaration.value))
      }
      continue
    }
    current.instructions.push(instruction)
    if (keyword === 'ARG') {
      try {
        for (const declaration of parseArgDeclarations(instruction.args, escapeChar)) declared.add(declaration.name)
      } catch {
        // Reported with its line when the stage is planned.
      }
    }
    const names: string[] = []
    if ((keyword === 'COPY' || keyword === 'ADD') && instruction.flags.from !== undefined) names.push(instruction.flags.from)
    if (keyword === 'RUN') {
      for (const mount of instruction.flagValues.mount ?? []) {
        const from = /(?:^|,)\s*from=([^,]*)/i.exec(mount)?.[1]
        if (from) names.push(from)
      }
    }
    for (const raw of names) {
      const value = substitute(instruction, raw)
      if (value === '') fail(line, `${keyword}: --from is empty after substitution`)
      const source = fromSource(value, stages)
      if (source.kind === 'stage' && source.index === current.index) fail(line, `${keyword} --from=${raw}: a stage cannot copy from itself`)
      if (source.kind === 'stage' && source.index > current.index) fail(line, `${keyword} --from=${raw}: stage ${source.index} comes later in the Dockerfile`)
      const list = current.sources.get(line) ?? []
      list.push(source)
      current.sources.set(line, list)
    }
  }
  if (stages.length === 0) fail(null, dockerfile.instructions.length === 0 ? 'the Dockerfile has no instructions' : 'no FROM instruction')

  let target = stages.length - 1
  if (options.target !== undefined && options.target !== '') {
    const wanted = options.target.toLowerCase()
    const found = stages.find((stage) => stage.name === wanted)
    if (!found) {
      const names = stages.map((stage) => stage.name).filter((name) => name !== undefined)
      fail(null, `target stage "${options.target}" could not be found (stages: ${names.length ? names.join(', ') : 'none is named'})`)
    }
    target = (found as StageHeader).index
  }

  const needed = new Set<number>()
  const visit = (index: number): void => {
    if (needed.has(index)) return
    needed.add(index)
    const stage = stages[index] as StageHeader
    if (stage.base.kind === 'stage') visit(stage.base.index)
    for (const list of stage.sources.values()) for (const source of list) if (source.kind === 'stage') visit(source.index)
  }
  visit(target)
  // Every dependency is an earlier stage, so index order is a dependency order.
  return { stages, target, needed: [...needed].sort((a, b) => a - b), globalArgs, declared }
}

/** `--from=` value: a stage index or name (the caller refuses itself and later stages), else an image. */
function fromSource(value: string, stages: readonly StageHeader[]): FromSource {
  if (/^\d+$/.test(value)) return { kind: 'stage', index: Number(value) }
  const stage = stages.find((s) => s.name === value.toLowerCase())
  return stage ? { kind: 'stage', index: stage.index } : { kind: 'image', ref: value }
}

/** Images a build needs: the FROMs and `--from` images of the needed stages, with the first line naming each. */
export function neededImages(graph: StageGraph): { ref: string; line: number; purpose: 'from' | 'copy' }[] {
  const images: { ref: string; line: number; purpose: 'from' | 'copy' }[] = []
  const seen = new Set<string>()
  for (const index of graph.needed) {
    const stage = graph.stages[index] as StageHeader
    const add = (ref: string, line: number, purpose: 'from' | 'copy'): void => {
      if (seen.has(ref)) return
      seen.add(ref)
      images.push({ ref, line, purpose })
    }
    if (stage.base.kind === 'image') add(stage.base.ref, stage.line, 'from')
    for (const [line, list] of stage.sources) for (const source of list) if (source.kind === 'image') add(source.ref, line, 'copy')
  }
  return images
}
