/**
 * Markdown pieces for a PR comment, where text from the PR (branch names, titles) or from a service
 * (ids, error text, URLs) is untrusted. GitHub renders comments with cmark-gfm and then turns
 * `@name` into a notification and `#12` into a cross-reference on the decoded text, so escaping
 * markup is not enough there. Each kind of value gets the form that reads plainly AND stays inert:
 * - free text: every markup character as an entity (markdown-escape.ts), plus an invisible word
 *   joiner after `@`, `#` before a digit and `GH-`, and a broken `www.`, so nobody is pinged,
 *   nothing is cross-referenced or auto-linked;
 * - ids and commands: code spans and fenced blocks, which show their text literally (entities would
 *   show as `&#45;` there: the "entity soup" of earlier summaries), so nothing is entity-escaped;
 * - URLs: validated http(s), percent-encoded where markdown or a table would read a character,
 *   and never escaped with entities, so the link target stays valid.
 */
import { escapeMarkdownInline, stripTerminalCodes, truncateText } from '../output/markdown-escape.ts'

/** U+2060 WORD JOINER: invisible, does not allow a line break, and ends a mention or reference. */
const JOINER = '\u2060'
const EMPTY_CELL = '–'

/** Untrusted text as inline markdown (also fit for a table cell): shows as written, does nothing. */
export function commentText(text: string, maxChars = 1000): string {
  return escapeMarkdownInline(truncateText(text, maxChars))
    .replace(/&#64;/g, `&#64;${JOINER}`)
    .replace(/(?<!&)#(?=\d)/g, `&#35;${JOINER}`)
    .replace(/\b(GH)-(?=\d)/gi, `$1&#45;${JOINER}`)
}

/** One line of untrusted text for a code span: controls and line breaks become spaces. */
function codeText(text: string, maxChars: number): string {
  return truncateText(stripTerminalCodes(text.replace(/[\r\n\t\f\v]+/g, ' ')).trim(), maxChars)
}

/** A fence of backticks longer than any run of backticks inside `text`. */
function fenceFor(text: string, minimum: number): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length))
  return '`'.repeat(Math.max(minimum, longest + 1))
}

/**
 * Untrusted text as a code span inside a table cell: shown literally, whatever it holds. A table
 * splits cells at `|` even inside code unless it is escaped, and its scanner pairs backslashes, so
 * the backslashes before each `|` are made an odd number.
 */
export function codeCell(text: string, maxChars = 200): string {
  const plain = codeText(text, maxChars)
  if (plain === '') return EMPTY_CELL
  const fence = fenceFor(plain, 1)
  // A span that starts or ends with a backtick needs a space inside the fence (stripped on render).
  const pad = plain.startsWith('`') || plain.endsWith('`') ? ' ' : ''
  const guarded = plain.replace(/(\\*)\|/g, (_, backslashes: string) => `${backslashes}${backslashes.length % 2 === 0 ? '\\' : '\\\\'}|`)
  return `${fence}${pad}${guarded}${pad}${fence}`
}

/** Untrusted text, possibly several lines, as a fenced code block (a command to copy). */
export function codeBlock(text: string, language = '', maxChars = 2000): string {
  const body = truncateText(stripTerminalCodes(text.replace(/\r\n?/g, '\n')), maxChars).replace(/\n+$/, '')
  const fence = fenceFor(body, 3)
  return `${fence}${language}\n${body}\n${fence}`
}

/** The URL when `value` is an absolute http or https URL, else undefined. */
export function httpUrl(value: string): URL | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return undefined
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined
}

/** The URL's text with the characters markdown or a table would act on percent-encoded. */
function linkTarget(url: URL): string {
  return url.href.replace(/[|()<>\s`\\[\]]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
}

/** A link with our own label (already markdown) to a URL we built or validated. */
export function markdownLink(label: string, url: URL): string {
  return `[${label}](${linkTarget(url)})`
}

/** A URL shown as itself and linked (an autolink): nothing inside is markup, so it reads plainly. */
export function autolink(url: URL): string {
  return `<${linkTarget(url)}>`
}
