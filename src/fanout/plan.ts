/**
 * Fan-out planning (pure): from the fan-out inputs to the list of runs, validated before anything
 * remote exists. Every error names its input (errors.ts InputError).
 *
 * The input shapes, kept as plain as workflow inputs allow:
 * - `runs`: a list of shell commands, one per line (blank lines and lines starting with `#` are
 *   skipped). A line is a whole command: a line ending in `\` is refused, since YAML block text
 *   that continues a command on the next line would otherwise run as two broken commands. Longer
 *   commands belong in a script.
 * - `run` + `shards: N`: the same command N times, each with `SHARD_INDEX` (0 … N-1) and
 *   `SHARD_COUNT` (N) in its environment; 0-based like CIRCLE_NODE_INDEX, so a 1-based tool takes
 *   `$((SHARD_INDEX + 1))/$SHARD_COUNT`. `run` keeps its meaning (`shell: false` still means an argv).
 * - `max-parallel`: how many runs are in flight at once (1 … {@link MAX_PARALLEL}, default 4).
 * - `fail-fast`: `true` stops at the first failed run: nothing new starts and the running ones are
 *   cancelled. Default `false`: a fan-out exists to see every run's result, and the step fails either way.
 *
 * `runs` and `run` are exclusive; `shards` needs `run`. Without `runs` or `shards` there is no fan-out
 * and `run` is a single run as before.
 */
import { InputError } from '../errors.ts'

/** Upper bound on runs per step: keeps the summary table, the log and the service's queue sane. */
export const MAX_TASKS = 256
export const MAX_PARALLEL = 64

/** Defaults of the fan-out inputs, for inputs.ts's INPUT_DEFAULTS and action.yml. */
export const FANOUT_INPUT_DEFAULTS = {
  'max-parallel': '4',
  'fail-fast': 'false',
} as const

/**
 * The fan-out inputs: `runs`, `shards` and `max-parallel` as the runner hands them over (empty when not
 * given); `fail-fast` already read by inputs.ts's strict boolean parser.
 */
export interface FanoutInputs {
  runs: string
  shards: string
  maxParallel: string
  failFast: boolean
}

/** The `run` input after inputs.ts has read it (and `shell`). */
export interface RunCommand {
  command: string
  args?: string[]
  shell: boolean
}

/** One run of the fan-out. */
export interface FanoutTask {
  /** 0-based position in the plan; results and the summary keep this order. */
  index: number
  /** Names the run in logs, the summary and saved state: "run 3 of 12", "shard 0 of 8". */
  label: string
  /** A shell expression when `shell`, else the executable (with `args`). */
  command: string
  args?: string[]
  shell: boolean
  /** The `env` input plus, for shards, SHARD_INDEX and SHARD_COUNT. */
  env: Record<string, string>
}

export interface FanoutPlan {
  tasks: FanoutTask[]
  maxParallel: number
  failFast: boolean
}

const SHARD_VARIABLES = ['SHARD_INDEX', 'SHARD_COUNT'] as const

/**
 * Reads the fan-out inputs. Returns undefined when neither `runs` nor `shards` is set (no fan-out);
 * `max-parallel` is validated either way, so a typo never waits for the day they matter.
 */
export function planFanout(raw: FanoutInputs, run: RunCommand | undefined, env: Readonly<Record<string, string>>): FanoutPlan | undefined {
  const maxParallel = parseMaxParallel(raw.maxParallel || FANOUT_INPUT_DEFAULTS['max-parallel'])
  const runs = raw.runs.trim()
  const shards = raw.shards.trim()
  if (runs !== '' && run !== undefined) {
    throw new InputError('runs', 'cannot be used together with run: use runs for a list of commands, or run with shards to repeat one command')
  }
  if (runs !== '' && shards !== '') {
    throw new InputError('shards', 'repeats the run command and cannot be used with runs (each line of runs is already a run of its own)')
  }
  let tasks: FanoutTask[]
  if (runs !== '') {
    tasks = commandTasks(raw.runs, env)
  } else if (shards !== '') {
    if (run === undefined) throw new InputError('shards', 'needs run: the command to run once per shard')
    tasks = shardTasks(parseShardCount(shards), run, env)
  } else {
    return undefined
  }
  return { tasks, maxParallel, failFast: raw.failFast }
}

/** One task per command line of `runs`. */
function commandTasks(value: string, env: Readonly<Record<string, string>>): FanoutTask[] {
  const commands: string[] = []
  value.split(/\r?\n/).forEach((line, lineIndex) => {
    const command = line.trim()
    if (command === '' || command.startsWith('#')) return
    if (command.endsWith('\\')) {
      throw new InputError('runs', `line ${lineIndex + 1} "${command}" ends with \\: each line is a whole command; put a longer command in a script`)
    }
    commands.push(command)
  })
  if (commands.length === 0) throw new InputError('runs', 'has no command: every line is blank or a # comment')
  if (commands.length > MAX_TASKS) throw new InputError('runs', `has ${commands.length} commands; at most ${MAX_TASKS} are allowed in one step`)
  return commands.map((command, index) => ({
    index,
    label: `run ${index + 1} of ${commands.length}`,
    command,
    shell: true,
    env: { ...env },
  }))
}

/** `run` once per shard, told which shard it is through its environment. */
function shardTasks(count: number, run: RunCommand, env: Readonly<Record<string, string>>): FanoutTask[] {
  const clash = SHARD_VARIABLES.find((name) => Object.hasOwn(env, name))
  if (clash) throw new InputError('env', `sets ${clash}, which shards sets for each shard; remove it from env`)
  return Array.from({ length: count }, (_, index) => ({
    index,
    label: `shard ${index} of ${count}`,
    command: run.command,
    ...(run.args ? { args: [...run.args] } : {}),
    shell: run.shell,
    env: { ...env, SHARD_INDEX: String(index), SHARD_COUNT: String(count) },
  }))
}

function parseWholeNumber(name: string, value: string, min: number, max: number, what: string): number {
  const text = value.trim()
  const number = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new InputError(name, `"${value}" is not ${what} (a whole number from ${min} to ${max})`)
  }
  return number
}

export function parseShardCount(value: string): number {
  return parseWholeNumber('shards', value, 1, MAX_TASKS, 'a number of shards')
}

export function parseMaxParallel(value: string): number {
  return parseWholeNumber('max-parallel', value, 1, MAX_PARALLEL, 'a number of runs at once')
}

/** The command as the user wrote it: a shell expression, or the argv of `shell: false`. */
export function displayCommand(task: FanoutTask): string {
  return task.shell ? task.command : JSON.stringify([task.command, ...(task.args ?? [])])
}
