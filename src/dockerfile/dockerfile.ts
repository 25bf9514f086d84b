/**
 * Dockerfile text → instructions, following BuildKit's parser rather than contree-cli's (users of
 * docker/build-push-action expect Docker's behaviour): parser directives, escape-char continuations
 * joined without inserting spaces, comment and empty lines allowed inside a continuation, leading
 * `--flag=value` words split off every instruction, JSON (exec) form detection, and heredocs
 * (`RUN <<EOF`, `COPY <<EOF /dest`) for RUN, COPY and ADD, read the way BuildKit reads them.
 */

export class DockerfileError extends Error {
  /** 1-based line of the offending instruction; null when the problem is the whole file. */
  readonly line: number | null
  /** Docker accepts it, the action cannot do it: known without the base images, so said before anything remote. */
  readonly unsupported: boolean
  constructor(line: number | null, message: string, fileName = 'Dockerfile', options?: ErrorOptions & { unsupported?: boolean }) {
    super(line === null ? `${fileName}: ${message}` : `${fileName}:${line}: ${message}`, options)
    this.name = 'DockerfileError'
    this.line = line
    this.unsupported = options?.unsupported ?? false
  }
}

export type InstructionForm = 'shell' | 'exec'

export interface Instruction {
  /** Upper-case keyword, e.g. "RUN". */
  keyword: string
  /** Everything after the keyword and the flags, continuations joined, trimmed. Not substituted. */
  args: string
  /** Leading `--name=value` words; a bare `--name` has the value "". Names are lower-case. */
  flags: Record<string, string>
  /** Every value of each flag in order; only repeatable flags (`--mount`) can have more than one. */
  flagValues: Record<string, string[]>
  /** Here-documents that follow the instruction, in the order their markers appear. */
  heredocs: Heredoc[]
  /** 'exec' when `args` is a JSON array of strings (only for keywords that accept one). */
  form: InstructionForm
  /** The JSON array when form is 'exec'. */
  argv?: string[]
  /** 1-based line where the instruction starts. */
  line: number
  /** The instruction as written on its first line, for messages. */
  original: string
}

export interface Heredoc {
  /** The delimiter word, e.g. "EOF" (also the file name of a COPY heredoc). */
  name: string
  /** The body, each line ending in "\n" (leading tabs already removed for `<<-`). */
  content: string
  /** False when the delimiter was quoted: the body is then taken literally. */
  expand: boolean
}

export interface ParsedDockerfile {
  instructions: Instruction[]
  /** The escape character in force (from `# escape=`), `\` by default. */
  escapeChar: string
  /** Parser directives found at the top of the file (lower-case names). */
  directives: Record<string, string>
  fileName: string
}

export const KNOWN_KEYWORDS: ReadonlySet<string> = new Set([
  'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL',
  'MAINTAINER', 'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
])

/** Keywords whose arguments Docker reads as a JSON array when they look like one. */
const JSON_FORM_KEYWORDS: ReadonlySet<string> = new Set(['RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'COPY', 'ADD', 'VOLUME'])

/** Keywords whose arguments may open here-documents (BuildKit's list). */
const HEREDOC_KEYWORDS: ReadonlySet<string> = new Set(['RUN', 'COPY', 'ADD'])

/** Flags an instruction may repeat; any other flag given twice is an error, as in BuildKit. */
const REPEATABLE_FLAGS: ReadonlySet<string> = new Set(['mount'])

/** A heredoc marker as a whole word: `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, optionally after a fd number. */
const HEREDOC_MARKER = /(?:^|\s)\d*<<(-?)(["']?)([^\s"'<>|&;]+)\2(?=\s|$)/g

const KNOWN_DIRECTIVES: ReadonlySet<string> = new Set(['escape', 'syntax', 'check'])

export interface ParseOptions {
  /** Name used in error messages; "Dockerfile" by default. */
  fileName?: string
}

export function parseDockerfile(text: string, options: ParseOptions = {}): ParsedDockerfile {
  const fileName = options.fileName ?? 'Dockerfile'
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  const { directives, escapeChar } = readDirectives(lines, fileName)
  const continuation = new RegExp(`${escapeRegExp(escapeChar)}[ \\t]*$`)
  const instructions: Instruction[] = []

  let i = 0
  while (i < lines.length) {
    const first = (lines[i] ?? '').trimStart()
    const startLine = i + 1
    i++
    if (first.trim() === '' || first.startsWith('#')) continue

    let joined = first
    let open = continuation.test(joined)
    if (open) joined = joined.replace(continuation, '')
    // Docker keeps continuation lines' leading whitespace and joins them with nothing in between;
    // comment lines and empty lines inside a continuation are skipped, not terminators.
    while (open && i < lines.length) {
      const next = lines[i] ?? ''
      i++
      if (next.trimStart().startsWith('#') || next.trim() === '') continue
      open = continuation.test(next)
      joined += open ? next.replace(continuation, '') : next
    }
    const instruction = parseInstruction(joined.trim(), startLine, first.trimEnd(), fileName)
    if (HEREDOC_KEYWORDS.has(instruction.keyword) && instruction.form === 'shell') {
      // The bodies follow the instruction line, one after the other, each up to its delimiter line.
      for (const match of instruction.args.matchAll(HEREDOC_MARKER)) {
        const chomp = match[1] === '-'
        const name = match[3] ?? ''
        const body: string[] = []
        let closed = false
        while (i < lines.length) {
          const raw = lines[i] ?? ''
          i++
          const line = chomp ? raw.replace(/^\t+/, '') : raw
          if (line === name) {
            closed = true
            break
          }
          body.push(line)
        }
        if (!closed) throw new DockerfileError(startLine, `here-document "${name}" is not closed: no line "${name}" follows`, fileName)
        instruction.heredocs.push({ name, content: body.map((line) => `${line}\n`).join(''), expand: match[2] === '' })
      }
    }
    instructions.push(instruction)
  }
  return { instructions, escapeChar, directives, fileName }
}

function readDirectives(lines: string[], fileName: string): { directives: Record<string, string>; escapeChar: string } {
  const directives: Record<string, string> = {}
  // Directives are only honoured before the first comment, empty line or instruction.
  for (let i = 0; i < lines.length; i++) {
    const match = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$/.exec(lines[i] ?? '')
    if (!match) break
    const name = (match[1] ?? '').toLowerCase()
    if (!KNOWN_DIRECTIVES.has(name)) break
    if (name in directives) throw new DockerfileError(i + 1, `only one ${name} parser directive can be used`, fileName)
    directives[name] = match[2] ?? ''
  }
  const escapeChar = directives.escape ?? '\\'
  if (escapeChar !== '\\' && escapeChar !== '`') {
    throw new DockerfileError(1, `invalid escape token '${escapeChar}': must be \` or \\`, fileName)
  }
  return { directives, escapeChar }
}

function parseInstruction(text: string, line: number, original: string, fileName: string): Instruction {
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text)
  const word = match?.[1] ?? ''
  const keyword = word.toUpperCase()
  if (!KNOWN_KEYWORDS.has(keyword)) {
    const hint = suggestKeyword(keyword)
    throw new DockerfileError(line, `unknown instruction "${word}"${hint ? ` (did you mean ${hint}?)` : ''}`, fileName)
  }
  const { flags, flagValues, rest } = splitFlags(match?.[2] ?? '', line, fileName)
  const instruction: Instruction = { keyword, args: rest, flags, flagValues, heredocs: [], form: 'shell', line, original }
  if (JSON_FORM_KEYWORDS.has(keyword)) {
    const argv = parseJsonArray(rest)
    if (argv) {
      instruction.form = 'exec'
      instruction.argv = argv
    }
  }
  return instruction
}

/** Docker reads leading words starting with `--` as flags, until the first other word or a bare `--`. */
function splitFlags(text: string, line: number, fileName: string): { flags: Record<string, string>; flagValues: Record<string, string[]>; rest: string } {
  const flags: Record<string, string> = {}
  const flagValues: Record<string, string[]> = {}
  let rest = text
  for (;;) {
    const match = /^--(\S*)(?:\s+|$)/.exec(rest)
    if (!match) break
    rest = rest.slice(match[0].length)
    const body = match[1] ?? ''
    if (body === '') break
    const eq = body.indexOf('=')
    const name = (eq === -1 ? body : body.slice(0, eq)).toLowerCase()
    const value = eq === -1 ? '' : unquote(body.slice(eq + 1))
    if (Object.hasOwn(flags, name) && !REPEATABLE_FLAGS.has(name)) throw new DockerfileError(line, `flag --${name} is given more than once`, fileName)
    flags[name] = value
    ;(flagValues[name] ??= []).push(value)
  }
  return { flags, flagValues, rest: rest.trim() }
}

function unquote(value: string): string {
  if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) return value.slice(1, -1)
  return value
}

/** A JSON array of strings, or null: anything else is shell form, as in Docker. */
export function parseJsonArray(text: string): string[] | null {
  const trimmed = text.trim()
  if (!trimmed.startsWith('[') || !trimmed.endsWith(']')) return null
  let value: unknown
  try {
    value = JSON.parse(trimmed)
  } catch {
    return null
  }
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === 'string')) return null
  return value
}

function suggestKeyword(word: string): string | undefined {
  let best: string | undefined
  let bestDistance = 3
  for (const keyword of KNOWN_KEYWORDS) {
    const distance = editDistance(word, keyword)
    if (distance < bestDistance) {
      best = keyword
      bestDistance = distance
    }
  }
  return best
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution))
    }
    previous = current
  }
  return previous[b.length] ?? 0
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')
}
