/**
 * Runs the bundled action exactly as the runner does: `node dist/index.js` in the workspace, inputs
 * as INPUT_* variables, GITHUB_OUTPUT / GITHUB_STATE / GITHUB_STEP_SUMMARY files, and for the post
 * step a second process with STATE_* variables. Cancellation is SIGINT, then SIGTERM 7.5 s later.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BUNDLE = path.join(REPO_ROOT, 'dist', 'index.js')

export interface ActionResult {
  exitCode: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  outputs: Record<string, string>
  /** STATE_* values the post step would receive. */
  state: Record<string, string>
  summary: string
}

export interface ActionOptions {
  inputs?: Record<string, string>
  env?: Record<string, string | undefined>
  /** Workspace directory; a fresh temp dir when omitted. */
  workspace?: string
  /** Run the post step with this state (what a previous main run left). */
  postState?: Record<string, string>
  /** Directory for the runner's files; a fresh temp dir when omitted. */
  runnerDir?: string
}

export interface RunningAction {
  child: ChildProcess
  /** Everything written to stdout so far. */
  stdout(): string
  /** Resolves when stdout matches. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<void>
  /** The GITHUB_STATE file as written so far (what post would get if the process died now). */
  stateText(): string
  /** Sends SIGINT, then SIGTERM after `sigtermAfterMs` if still running (the runner's sequence). */
  cancel(sigtermAfterMs?: number): void
  done: Promise<ActionResult>
}

/** Parses the runner's file-command format (`name<<delimiter` heredocs, or `name=value`). */
export function parseFileCommands(text: string): Record<string, string> {
  const result: Record<string, string> = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line)
    if (heredoc) {
      const [, name, delimiter] = heredoc as unknown as [string, string, string]
      const value: string[] = []
      i++
      while (i < lines.length && lines[i] !== delimiter) value.push(lines[i++] as string)
      result[name] = value.join('\n')
    } else if (line.includes('=')) {
      const eq = line.indexOf('=')
      result[line.slice(0, eq)] = line.slice(eq + 1)
    }
  }
  return result
}

export function startAction(options: ActionOptions = {}): RunningAction {
  const runnerDir = options.runnerDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'runner-'))
  const workspace = options.workspace ?? fs.mkdtempSync(path.join(os.tmpdir(), 'workspace-'))
  const files = {
    output: path.join(runnerDir, 'output'),
    state: path.join(runnerDir, 'state'),
    summary: path.join(runnerDir, 'summary'),
  }
  for (const file of Object.values(files)) fs.writeFileSync(file, '')
  const tempDir = path.join(runnerDir, 'temp')
  fs.mkdirSync(tempDir, { recursive: true })

  const env: Record<string, string> = {}
  // A clean environment like the runner's: no stray CONTREE_* or INPUT_* from the test process.
  for (const key of ['PATH', 'HOME', 'LANG', 'TMPDIR', 'SYSTEMROOT']) {
    const value = process.env[key]
    if (value !== undefined) env[key] = value
  }
  Object.assign(env, {
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: workspace,
    GITHUB_OUTPUT: files.output,
    GITHUB_STATE: files.state,
    GITHUB_STEP_SUMMARY: files.summary,
    RUNNER_TEMP: tempDir,
  })
  for (const [name, value] of Object.entries(options.inputs ?? {})) {
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value
  }
  for (const [name, value] of Object.entries(options.postState ?? {})) env[`STATE_${name}`] = value
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }

  const child = spawn(process.execPath, [BUNDLE], { cwd: workspace, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const waiters: { pattern: RegExp; resolve: () => void }[] = []
  child.stdout?.setEncoding('utf8')
  child.stderr?.setEncoding('utf8')
  child.stdout?.on('data', (chunk: string) => {
    stdout += chunk
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(stdout)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve()
      }
    }
  })
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk
  })

  const done = new Promise<ActionResult>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (exitCode, signal) => {
      resolve({
        exitCode,
        signal,
        stdout,
        stderr,
        outputs: parseFileCommands(fs.readFileSync(files.output, 'utf8')),
        state: parseFileCommands(fs.readFileSync(files.state, 'utf8')),
        summary: fs.readFileSync(files.summary, 'utf8'),
      })
    })
  })

  return {
    child,
    stdout: () => stdout,
    stateText: () => fs.readFileSync(files.state, 'utf8'),
    waitForStdout(pattern, timeoutMs = 20_000) {
      if (pattern.test(stdout)) return Promise.resolve()
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`stdout never matched ${pattern}; got:\n${stdout.slice(-2000)}`)), timeoutMs)
        waiters.push({
          pattern,
          resolve: () => {
            clearTimeout(timer)
            resolve()
          },
        })
      })
    },
    cancel(sigtermAfterMs = 7500) {
      child.kill('SIGINT')
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      }, sigtermAfterMs)
      timer.unref()
      child.once('close', () => clearTimeout(timer))
    },
    done,
  }
}

export function runAction(options: ActionOptions = {}): Promise<ActionResult> {
  return startAction(options).done
}

/** Runs the post step with the state a main run left behind. */
export function runPost(main: ActionResult, options: ActionOptions = {}): Promise<ActionResult> {
  return runAction({ ...options, postState: { ...main.state, ...(options.postState ?? {}) } })
}

/**
 * Lines the runner would execute as workflow commands: outside any stop-commands window, a line
 * starting with `::` (after leading whitespace) or containing `##[`. Lines are split the way the
 * runner reads them: on \n, on \r\n and on a lone \r.
 */
export function executedCommands(stdout: string): string[] {
  const executed: string[] = []
  let stopToken: string | undefined
  for (const line of stdout.split(/\r\n|\n|\r/)) {
    const trimmed = line.trimStart()
    if (stopToken !== undefined) {
      if (trimmed === `::${stopToken}::`) stopToken = undefined
      continue
    }
    const stop = /^::stop-commands::(.+)$/.exec(trimmed)
    if (stop) {
      stopToken = stop[1]
      executed.push(trimmed)
      continue
    }
    if (trimmed.startsWith('::') || line.includes('##[')) executed.push(trimmed)
  }
  return executed
}
