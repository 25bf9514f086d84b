/**
 * Escaping of untrusted text (remote instructions, error strings, log lines) for the job summary, which
 * GitHub renders as GitHub-flavoured markdown with inline HTML. Remote text must stay text: no tags,
 * no table breaks, no code spans, no links, no emphasis, no math, no mentions — and it must still read
 * plainly, so only the characters that can start markup inside a table cell are escaped (a URL keeps
 * its `:`, `/`, `.`, `-` and `=`).
 */

// The characters that can open markup mid-line: HTML and entities, code spans, table pipes, emphasis,
// strikethrough, link brackets (which also disarm `![`), backslash escapes, math and mentions. Line-start
// markers (`#`, `-`, `+`, `=`) cannot occur: cells and our lines never start with remote text. They become
// numeric entities, which render as the character and are decoded only after the markup is parsed.
const MARKDOWN_SPECIAL = /[&<>"'`|*_[\]\\~$@]/g
const HTML_SPECIAL = /[&<>"']/g

// CSI / OSC / two-byte escape sequences: the summary does not render ANSI colours (platform §2.10).
const ANSI_SEQUENCE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?/g
// Remaining controls except tab and line breaks, which the callers decide about.
const CONTROL = /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]/g

function entity(char: string): string {
  return `&#${char.charCodeAt(0)};`
}

/** Drops terminal escape sequences and invisible controls that have no place in a summary. */
export function stripTerminalCodes(text: string): string {
  return text.replace(ANSI_SEQUENCE, '').replace(CONTROL, '')
}

/**
 * Escapes text for inline markdown, including a table cell: every markup character becomes an entity
 * and line breaks become `<br>` so a value stays in its cell.
 */
export function escapeMarkdownInline(text: string): string {
  return (
    stripTerminalCodes(text)
      .replace(MARKDOWN_SPECIAL, entity)
      // GitHub turns bare `https://…` and `www.…` into links; remote text gets none.
      .replace(/:(?=\/\/)/g, '&#58;')
      .replace(/\b(www)\./gi, '$1&#46;')
      .replace(/\r\n|\r|\n/g, '<br>')
  )
}

/**
 * Escapes text for the inside of an HTML block such as `<pre>`: markdown is not parsed there, so only
 * HTML needs neutralising (which also makes a `</pre>` in the text harmless).
 */
export function escapeHtml(text: string): string {
  return stripTerminalCodes(text).replace(HTML_SPECIAL, entity)
}

/**
 * An identifier or URL shown verbatim as a code span: nothing inside a code span is markup, so it reads
 * exactly as written. Text a code span cannot hold literally (a backtick, a table pipe, a line break)
 * falls back to escaped text inside `<code>`.
 */
export function codeSpan(text: string): string {
  const plain = stripTerminalCodes(text)
  if (/^[^`|\r\n]+$/.test(plain) && !/^\s|\s$/.test(plain)) return `\`${plain}\``
  return `<code>${escapeMarkdownInline(plain)}</code>`
}

/** Shortens text to at most `maxChars` characters, marking the cut, never splitting a surrogate pair. */
export function truncateText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text
  let cut = Math.max(0, maxChars - 1)
  const code = text.charCodeAt(cut - 1)
  if (code >= 0xd800 && code <= 0xdbff) cut--
  return `${text.slice(0, cut)}…`
}
