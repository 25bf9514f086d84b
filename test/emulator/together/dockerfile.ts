// Reads a Dockerfile the way BuildKit's front end does, for the subset the emulator executes: the escape
// directive, line continuations, comments, leading `--flags`, the JSON (exec) form, and word processing
// with quotes and `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` substitution. Written independently of
// the action's own parser so a bug there is not mirrored here.

export class DockerfileError extends Error {}

export interface Instruction {
  keyword: string
  /** The text after the keyword and its flags, continuations joined. */
  args: string
  flags: Map<string, string>
  /** The exec form's array, when the arguments are one. */
  json: string[] | null
  line: number
  /** As written (continuations joined), for log headers. */
  original: string
}

export interface Dockerfile {
  escape: string
  instructions: Instruction[]
}

const FLAG = /^--([A-Za-z][A-Za-z0-9-]*)(?:=(\S*))?(?:\s+|$)/
const TAKES_FLAGS = new Set(['COPY', 'ADD', 'RUN', 'FROM'])

export function parseDockerfile(text: string): Dockerfile {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  let escape = '\\'
  // Parser directives: `# name=value` lines at the very top, before anything else.
  let index = 0
  for (; index < lines.length; index++) {
    const match = /^#\s*([A-Za-z]+)\s*=\s*(.*?)\s*$/.exec(lines[index] as string)
    if (!match) break
    if ((match[1] as string).toLowerCase() === 'escape') {
      if (match[2] !== '\\' && match[2] !== '`') throw new DockerfileError(`invalid escape directive ${JSON.stringify(match[2])}`)
      escape = match[2]
    }
  }
  const continuation = new RegExp(`${escape === '\\' ? '\\\\' : '`'}[ \\t]*$`)
  const instructions: Instruction[] = []
  let pending: string | null = null
  let startLine = 0
  for (; index < lines.length; index++) {
    const raw = lines[index] as string
    const trimmed = raw.trim()
    if (trimmed.startsWith('#')) continue
    if (pending !== null && trimmed === '') continue
    if (pending === null) {
      if (trimmed === '') continue
      startLine = index + 1
      pending = ''
    }
    if (continuation.test(raw)) {
      pending += raw.replace(continuation, '')
      continue
    }
    pending += raw
    instructions.push(parseInstruction(pending.trim(), startLine))
    pending = null
  }
  if (pending !== null && pending.trim() !== '') instructions.push(parseInstruction(pending.trim(), startLine))
  return { escape, instructions }
}

function parseInstruction(text: string, line: number): Instruction {
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text)
  const keyword = (match?.[1] ?? '').toUpperCase()
  let args = match?.[2] ?? ''
  const flags = new Map<string, string>()
  if (TAKES_FLAGS.has(keyword)) {
    for (let flag = FLAG.exec(args); flag; flag = FLAG.exec(args)) {
      flags.set((flag[1] as string).toLowerCase(), flag[2] ?? 'true')
      args = args.slice(flag[0].length)
    }
  }
  return { keyword, args: args.trim(), flags, json: jsonForm(args), line, original: text }
}

function jsonForm(args: string): string[] | null {
  const trimmed = args.trim()
  if (!trimmed.startsWith('[')) return null
  try {
    const value: unknown = JSON.parse(trimmed)
    if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value as string[]
  } catch {
    // Not JSON: the shell form, as Docker treats it.
  }
  return null
}

export type Lookup = (name: string) => string | undefined

/** Words with quotes removed and variables substituted (COPY sources, ENV pairs, FROM …). */
export function words(text: string, lookup: Lookup, escape: string): string[] {
  return lex(text, lookup, escape, true)
}

/** One word: the whole text substituted, quotes removed, whitespace kept (WORKDIR, USER). */
export function word(text: string, lookup: Lookup, escape: string): string {
  return lex(text, lookup, escape, false).join('')
}

function lex(text: string, lookup: Lookup, escape: string, split: boolean): string[] {
  const out: string[] = []
  let current = ''
  let inWord = false
  let i = 0
  const expand = (): string => {
    // text[i] is '$'
    const next = text[i + 1]
    if (next === '{') {
      const close = findClose(text, i + 2)
      if (close < 0) throw new DockerfileError(`missing '}' in ${JSON.stringify(text)}`)
      const inner = text.slice(i + 2, close)
      i = close + 1
      const op = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([\s\S]*))?$/.exec(inner)
      if (!op) throw new DockerfileError(`bad substitution in ${JSON.stringify(text)}`)
      const value = lookup(op[1] as string)
      const kind = op[2]
      const alternative = () => lex(op[3] ?? '', lookup, escape, false).join('')
      if (kind === ':-') return value === undefined || value === '' ? alternative() : value
      if (kind === '-') return value === undefined ? alternative() : value
      if (kind === ':+') return value === undefined || value === '' ? '' : alternative()
      if (kind === '+') return value === undefined ? '' : alternative()
      return value ?? ''
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1))
    if (!name) {
      i += 1
      return '$'
    }
    i += 1 + name[0].length
    return lookup(name[0]) ?? ''
  }
  while (i < text.length) {
    const c = text[i] as string
    if (split && /\s/.test(c)) {
      if (inWord) out.push(current)
      current = ''
      inWord = false
      i += 1
      continue
    }
    inWord = true
    if (c === escape) {
      current += text[i + 1] ?? ''
      i += 2
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1)
      if (close < 0) throw new DockerfileError(`unterminated single quote in ${JSON.stringify(text)}`)
      current += text.slice(i + 1, close)
      i = close + 1
    } else if (c === '"') {
      i += 1
      for (;;) {
        if (i >= text.length) throw new DockerfileError(`unterminated double quote in ${JSON.stringify(text)}`)
        const d = text[i] as string
        if (d === '"') {
          i += 1
          break
        }
        if (d === escape && ['"', '$', escape].includes(text[i + 1] ?? '')) {
          current += text[i + 1]
          i += 2
        } else if (d === '$') {
          current += expand()
        } else {
          current += d
          i += 1
        }
      }
    } else if (c === '$') {
      current += expand()
    } else {
      current += c
      i += 1
    }
  }
  if (inWord || !split) out.push(current)
  return out
}

function findClose(text: string, from: number): number {
  let depth = 1
  for (let i = from; i < text.length; i++) {
    if (text[i] === '{') depth += 1
    if (text[i] === '}') {
      depth -= 1
      if (depth === 0) return i
    }
  }
  return -1
}

/** `KEY=VALUE …` pairs (ENV, ARG, LABEL) or the legacy `ENV KEY value with spaces`. */
export function keyValues(instruction: Instruction, lookup: Lookup, escape: string): Array<[string, string | undefined]> {
  const args = instruction.args
  const first = /^(\S+)/.exec(args)?.[1] ?? ''
  if (instruction.keyword === 'ENV' && !first.includes('=')) {
    const rest = args.slice(first.length).trim()
    if (rest === '') throw new DockerfileError(`ENV names can not be blank (line ${instruction.line})`)
    return [[first, word(rest, lookup, escape)]]
  }
  return words(args, lookup, escape).map((item) => {
    const eq = item.indexOf('=')
    if (eq < 0) {
      if (instruction.keyword === 'ARG') return [item, undefined]
      throw new DockerfileError(`${instruction.keyword} requires KEY=VALUE (line ${instruction.line})`)
    }
    return [item.slice(0, eq), item.slice(eq + 1)]
  })
}
