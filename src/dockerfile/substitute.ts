/**
 * Docker's builder-side variable substitution (the "shell lexer" of BuildKit), which is not a shell:
 * `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`,
 * `${VAR?msg}`; quote removal (single quotes are literal, double quotes substitute); the Dockerfile
 * escape character makes the next character literal. Unknown variables become "".
 */

export class SubstitutionError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SubstitutionError'
  }
}

/** Variables visible to substitution; a missing key is an unset variable. */
export type Variables = Readonly<Record<string, string>>

/**
 * Instructions whose arguments the builder substitutes. RUN, CMD and ENTRYPOINT are absent on
 * purpose: their `$VAR` is the shell's business at run time, fed by the ENV/ARG environment.
 */
export const SUBSTITUTING_INSTRUCTIONS: ReadonlySet<string> = new Set([
  'ADD', 'COPY', 'ENV', 'EXPOSE', 'FROM', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR', 'ONBUILD', 'ARG',
])

const EOF = ''

class Scanner {
  readonly chars: string[]
  pos = 0
  constructor(text: string) {
    // Code points, so that a character outside the BMP is one character.
    this.chars = Array.from(text)
  }
  peek(): string {
    return this.chars[this.pos] ?? EOF
  }
  next(): string {
    const ch = this.chars[this.pos] ?? EOF
    if (ch !== EOF) this.pos++
    return ch
  }
}

/** Docker's ProcessWord: substitution plus quote and escape removal on one word. */
export function processWord(word: string, variables: Variables, escapeChar = '\\'): string {
  const scanner = new Scanner(word)
  return processUntil(scanner, variables, escapeChar, EOF)
}

/**
 * Splits on whitespace outside quotes, keeping quotes and escapes in the words (Docker's parseWords),
 * so that each word can then go through processWord.
 */
export function splitWords(text: string, escapeChar = '\\'): string[] {
  const words: string[] = []
  let word = ''
  let quote: string | null = null
  let inWord = false
  const chars = Array.from(text)
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] ?? ''
    if (quote === null && /\s/.test(ch)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
      continue
    }
    inWord = true
    word += ch
    if (ch === escapeChar && quote !== "'" && i + 1 < chars.length) {
      word += chars[++i] ?? ''
      continue
    }
    if (quote === null && (ch === '"' || ch === "'")) quote = ch
    else if (quote === ch) quote = null
  }
  if (inWord) words.push(word)
  return words
}

function processUntil(scanner: Scanner, variables: Variables, escapeChar: string, stop: string): string {
  let result = ''
  for (;;) {
    const ch = scanner.peek()
    if (ch === EOF) {
      if (stop !== EOF) throw new SubstitutionError(`missing '${stop}' in substitution`)
      return result
    }
    if (stop !== EOF && ch === stop) {
      scanner.next()
      return result
    }
    if (ch === "'") {
      result += processSingleQuote(scanner)
    } else if (ch === '"') {
      result += processDoubleQuote(scanner, variables, escapeChar)
    } else if (ch === '$') {
      result += processDollar(scanner, variables, escapeChar)
    } else if (ch === escapeChar) {
      scanner.next()
      const escaped = scanner.next()
      // A trailing escape character has nothing to escape and is dropped, as Docker does.
      result += escaped
    } else {
      result += scanner.next()
    }
  }
}

function processSingleQuote(scanner: Scanner): string {
  scanner.next()
  let result = ''
  for (;;) {
    const ch = scanner.next()
    if (ch === EOF) throw new SubstitutionError('unexpected end of statement while looking for matching single-quote')
    if (ch === "'") return result
    result += ch
  }
}

function processDoubleQuote(scanner: Scanner, variables: Variables, escapeChar: string): string {
  scanner.next()
  let result = ''
  for (;;) {
    const ch = scanner.peek()
    if (ch === EOF) throw new SubstitutionError('unexpected end of statement while looking for matching double-quote')
    if (ch === '"') {
      scanner.next()
      return result
    }
    if (ch === '$') {
      result += processDollar(scanner, variables, escapeChar)
      continue
    }
    scanner.next()
    if (ch === escapeChar) {
      // Inside double quotes the escape only applies to `"`, `$` and itself; otherwise it is kept.
      const next = scanner.peek()
      if (next === '"' || next === '$' || next === escapeChar) {
        result += scanner.next()
        continue
      }
    }
    result += ch
  }
}

function processDollar(scanner: Scanner, variables: Variables, escapeChar: string): string {
  scanner.next()
  if (scanner.peek() !== '{') {
    const name = readName(scanner)
    // A `$` not followed by a name stays a literal `$`.
    return name === '' ? '$' : lookup(variables, name) ?? ''
  }
  scanner.next()
  const name = readName(scanner)
  if (name === '') throw new SubstitutionError('bad substitution: expected a variable name after "${"')
  const ch = scanner.next()
  if (ch === '}') return lookup(variables, name) ?? ''
  let colon = false
  let modifier = ch
  if (ch === ':') {
    colon = true
    modifier = scanner.next()
  }
  if (modifier !== '-' && modifier !== '+' && modifier !== '?') {
    throw new SubstitutionError(
      modifier === EOF ? `missing '}' in substitution of ${name}` : `unsupported modifier (${colon ? ':' : ''}${modifier}) in substitution of ${name}`,
    )
  }
  const word = processUntil(scanner, variables, escapeChar, '}')
  const value = lookup(variables, name)
  // With a colon, an empty value counts as unset (POSIX semantics, which Docker follows).
  const isSet = value !== undefined && (!colon || value !== '')
  switch (modifier) {
    case '-':
      return isSet ? (value ?? '') : word
    case '+':
      return isSet ? word : ''
    default:
      if (!isSet) throw new SubstitutionError(`${name}: ${word === '' ? 'is not allowed to be unset' : word}`)
      return value ?? ''
  }
}

function readName(scanner: Scanner): string {
  let name = ''
  // A name that starts with a digit is a positional parameter: all its digits, nothing else.
  if (/\d/.test(scanner.peek())) {
    while (/\d/.test(scanner.peek())) name += scanner.next()
    return name
  }
  while (/[\p{L}\p{N}_]/u.test(scanner.peek())) name += scanner.next()
  return name
}

function lookup(variables: Variables, name: string): string | undefined {
  return Object.hasOwn(variables, name) ? variables[name] : undefined
}
