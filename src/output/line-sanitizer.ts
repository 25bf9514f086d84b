/**
 * Makes one line of untrusted remote text inert for the runner's log reader (platform notes §2.1, §2.4).
 *
 * stop-commands already stops `::cmd::` and `##[cmd]` processing, but it does not cover everything:
 * the legacy `##[` marker is also a rendering marker in the stored log, the resume token itself must
 * never be echoed, and a stray control character is noise at best. Splitting on `\r` and `\n` is the
 * line assembler's job (remote-log.ts); any that still reach this function are made visible instead.
 */

const ZERO_WIDTH_SPACE = '\u200B'

/** Shown in place of a leaked stop-commands token; it is not a command name and holds no secret. */
export const REDACTED_TOKEN = '‹stop-token›'

// C0 controls except TAB (kept: harmless) and ESC (kept: the web viewer renders ANSI SGR colours),
// plus DEL, plus the legacy command prefix which the runner finds anywhere in a line.
const UNSAFE = /[\x00-\x08\x0A-\x1A\x1C-\x1F\x7F]|##\[/g

function neutralise(match: string): string {
  // `#\u200B#[` looks the same in the viewer and contains no `##[`, even next to another `#`.
  if (match.length === 3) return `#${ZERO_WIDTH_SPACE}#[`
  const code = match.charCodeAt(0)
  // Unicode "control pictures" keep the character visible (␀, ␛, ...) without its effect.
  return code === 0x7f ? '\u2421' : String.fromCharCode(0x2400 + code)
}

/**
 * Leading whitespace as the runner trims it (.NET TrimStart: Unicode spaces, \t..\r, U+0085); a
 * superset is fine because all we do on a match is add an invisible character.
 */
const LEADING_COMMAND = /^[\s\u0085]*::/

/**
 * Defence in depth for the V2 form: inside a stop-commands window a leading `::` is already inert,
 * but a zero-width space between the colons keeps it inert even if the window were ever broken.
 */
export function guardLeadingCommand(line: string): string {
  const first = line.charCodeAt(0)
  // Cheap pre-check: only ':' or whitespace-ish first characters can start a V2 command.
  if (first !== 0x3a && first > 0x20 && first < 0x80) return line
  const match = LEADING_COMMAND.exec(line)
  if (match === null) return line
  const colon = match[0].length - 2
  return `${line.slice(0, colon)}:${ZERO_WIDTH_SPACE}${line.slice(colon + 1)}`
}

/** A sanitiser bound to one stop-commands token (or none). */
export type LineSanitizer = (line: string) => string

/**
 * Builds the per-line sanitiser for a window. The runner matches the resume token case-insensitively
 * (as a `::token::` or `##[token]` command), so any casing of it is redacted, wherever it occurs.
 *
 * The result is idempotent (sanitising twice changes nothing more), which lets the line assembler
 * re-sanitise a buffered remainder after more text has been appended to it. It does not apply
 * {@link guardLeadingCommand}: that depends on where a line is finally cut, so it comes last.
 */
export function createLineSanitizer(stopToken?: string): LineSanitizer {
  const tokenPattern =
    stopToken === undefined || stopToken === ''
      ? null
      : new RegExp(stopToken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi')
  return (line: string): string => {
    let result = line
    if (tokenPattern !== null) result = result.replace(tokenPattern, REDACTED_TOKEN)
    return result.replace(UNSAFE, neutralise)
  }
}

/** Sanitises one complete, final line (including the leading-command guard). */
export function sanitizeLine(line: string, stopToken?: string): string {
  return guardLeadingCommand(createLineSanitizer(stopToken)(line))
}
