/**
 * Test oracle: reads action output the way the runner does (platform notes §1.1, §2.1, §2.4;
 * actions/runner ProcessInvoker.StartReadStream, ActionCommand.TryParseV2/TryParse,
 * ActionCommandManager.TryProcessCommand) and reports every line that would be processed as a command.
 *
 * It is deliberately MORE eager than the runner: any command name counts (not only registered ones),
 * so a test that passes here passes on the runner too.
 */

export interface SimulatedCommand {
  /** 0-based index into `lines`. */
  index: number
  line: string
  /** Command name as parsed ('stop-commands', 'group', ... or the resume token). */
  name: string
  data: string
  /** 'resume' when this line ended a stop-commands window. */
  kind: 'command' | 'resume'
}

export interface Simulation {
  /** Lines as the runner's StreamReader.ReadLine sees them. */
  lines: string[]
  commands: SimulatedCommand[]
  /** True when output ended with command processing still stopped. */
  pausedAtEnd: boolean
}

/** StreamReader.ReadLine: `\n`, `\r\n` and a lone `\r` each end a line; no empty line after the last end. */
export function readRunnerLines(output: string): string[] {
  const lines = output.split(/\r\n|\r|\n/)
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop()
  return lines
}

function unescapeData(text: string): string {
  return text.replaceAll('%0D', '\r').replaceAll('%0A', '\n').replaceAll('%25', '%')
}

// .NET TrimStart trims char.IsWhiteSpace; JS \s plus U+0085 is a superset of it.
const LEADING_WHITESPACE = /^[\s\u0085]+/

/** `::name props::data` after leading whitespace (TryParseV2). */
function parseV2(line: string): { name: string; data: string } | null {
  const message = line.replace(LEADING_WHITESPACE, '')
  if (!message.startsWith('::')) return null
  const end = message.indexOf('::', 2)
  if (end < 0) return null
  const info = message.slice(2, end)
  const space = info.indexOf(' ')
  return { name: space < 0 ? info : info.slice(0, space), data: unescapeData(message.slice(end + 2)) }
}

/** `##[name props]data` anywhere in the line (TryParse, legacy). */
function parseLegacy(line: string): { name: string; data: string } | null {
  const prefix = line.indexOf('##[')
  if (prefix < 0) return null
  const close = line.indexOf(']', prefix)
  if (close < 0) return null
  const info = line.slice(prefix + 3, close)
  const space = info.indexOf(' ')
  return { name: space < 0 ? info : info.slice(0, space), data: line.slice(close + 1) }
}

export function simulateRunner(output: string): Simulation {
  const lines = readRunnerLines(output)
  const commands: SimulatedCommand[] = []
  let stopToken: string | null = null
  lines.forEach((line, index) => {
    const parsed = parseV2(line) ?? parseLegacy(line)
    if (parsed === null) return
    if (stopToken !== null) {
      // While stopped, only the resume token (case-insensitive) is processed.
      if (parsed.name.toLowerCase() === stopToken.toLowerCase()) {
        commands.push({ index, line, name: parsed.name, data: parsed.data, kind: 'resume' })
        stopToken = null
      }
      return
    }
    commands.push({ index, line, name: parsed.name, data: parsed.data, kind: 'command' })
    if (parsed.name.toLowerCase() === 'stop-commands') stopToken = parsed.data
  })
  return { lines, commands, pausedAtEnd: stopToken !== null }
}

/** The output with every stop-commands and resume line removed: what defence in depth must survive. */
export function withoutStopCommands(output: string): string {
  const sim = simulateRunner(output)
  const drop = new Set(
    sim.commands.filter((c) => c.kind === 'resume' || c.name === 'stop-commands').map((c) => c.index),
  )
  return sim.lines.filter((_, i) => !drop.has(i)).join('\n') + '\n'
}
