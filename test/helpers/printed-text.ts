/**
 * The remote text a reader of the log sees in an operation's group, with the action's own marks
 * undone: the group's stop-commands window only, and a piece ending in the continuation marker joined
 * to the next one (the action cuts lines longer than the runner's limit into marked pieces).
 */

/** Appended by the action to every piece of a cut line but the last (src/output/remote-log.ts). */
const CONTINUATION_MARKER = ' ↩'

/**
 * The text printed in the stop-commands window of the first group whose `::group::` line matches
 * `title` (default: the run's group). Undefined when there is no such group; a window that was never
 * closed (the process died) runs to the end of `stdout`.
 */
export function printedText(stdout: string, title: RegExp = /::group::Run: /): string | undefined {
  const start = stdout.search(title)
  if (start === -1) return undefined
  const end = stdout.indexOf('\n::endgroup::', start)
  const lines = stdout.slice(start, end === -1 ? undefined : end + 1).split('\n')
  const open = lines.findIndex((line) => line.startsWith('::stop-commands::'))
  if (open === -1) return ''
  const token = lines[open]?.slice('::stop-commands::'.length)
  const close = lines.indexOf(`::${token}::`, open + 1)
  // Without its closing line the window's last line may be unfinished: only whole lines count.
  const window = close === -1 ? lines.slice(open + 1, -1) : lines.slice(open + 1, close)
  const text: string[] = []
  for (const line of window) {
    if (line.endsWith(CONTINUATION_MARKER)) text.push(line.slice(0, -CONTINUATION_MARKER.length))
    else text.push(line, '\n')
  }
  return text.join('')
}

/** Every line printed inside a stop-commands window of `stdout` (any group), in order, as printed. */
export function linesInsideStopCommands(stdout: string): string[] {
  const lines: string[] = []
  let token: string | undefined
  for (const line of stdout.split('\n')) {
    if (token === undefined) {
      token = /^::stop-commands::(.+)$/.exec(line)?.[1]
      continue
    }
    if (line === `::${token}::`) token = undefined
    else lines.push(line)
  }
  return lines
}
