/**
 * The `name=value` argument lists of ENV, LABEL and ARG, split the way Docker's parser does before
 * substitution: words split on unquoted whitespace, each `name=value` split on its first `=`; ENV and
 * LABEL also accept the legacy one-pair form `ENV NAME value with spaces`.
 */
import { splitWords } from './substitute.ts'

export interface NameValue {
  /** Raw (unsubstituted) name. */
  name: string
  /** Raw (unsubstituted) value; undefined for a bare ARG name. */
  value?: string
}

/** ENV / LABEL arguments. Throws a plain Error with Docker's wording; the caller adds the line. */
export function parseNameValues(keyword: string, args: string, escapeChar: string): NameValue[] {
  const words = splitWords(args, escapeChar)
  const first = words[0]
  if (first === undefined) throw new Error(`${keyword} requires at least one argument`)
  if (!first.includes('=')) {
    // Legacy form: the name, then the whole rest of the line (spaces and all) as the value.
    const match = /^(\S+)\s+([\s\S]*)$/.exec(args.trim())
    if (!match || (match[2] ?? '').trim() === '') throw new Error(`${keyword} must have two arguments`)
    return [{ name: match[1] ?? '', value: match[2] ?? '' }]
  }
  return words.map((word) => {
    const eq = word.indexOf('=')
    if (eq === -1) throw new Error(`Syntax error - can't find = in "${word}". Must be of the form: name=value`)
    if (eq === 0) throw new Error(`${keyword} names can not be blank`)
    return { name: word.slice(0, eq), value: word.slice(eq + 1) }
  })
}

/** ARG arguments: one or more `NAME` or `NAME=default` words. */
export function parseArgDeclarations(args: string, escapeChar: string): NameValue[] {
  const words = splitWords(args, escapeChar)
  if (words.length === 0) throw new Error('ARG requires at least one argument')
  return words.map((word) => {
    const eq = word.indexOf('=')
    if (eq === 0) throw new Error('ARG names can not be blank')
    return eq === -1 ? { name: word } : { name: word.slice(0, eq), value: word.slice(eq + 1) }
  })
}
