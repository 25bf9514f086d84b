// The agent's execs (sandbox-openapi.json: ExecItem, ExecStdout). Each exec is a real process in the
// sandbox root; its output is buffered as numbered frames that streams replay and follow. Sequence numbers
// start at 1, so `lastSequence=0` (or none) means everything; the frame carrying `exitCode` is the last.
import { randomBytes } from 'node:crypto'
import { constants as osConstants } from 'node:os'
import { StringDecoder } from 'node:string_decoder'
import type { RunningCommand } from './run-in-root.ts'

/** The agent's own words: CREATED, RUNNING, EXITED (STOPPING/STOPPED exist there too; an emulated exec never needs them). */
export type ExecStatus = 'CREATED' | 'RUNNING' | 'EXITED'

export interface ExecFrame {
  type: 'stdout' | 'stderr'
  output: string
  sequence: number
  timestamp: string
  exitCode?: number
}

/** How an exec's output ended: its process exited, the exec was deleted, or the sandbox went away. */
export type ExecEnd = 'exited' | 'deleted' | 'vanished'

export interface ExecLaunch {
  cwd: string
  env: Record<string, string>
  uid: number
  gid: number
}

export class Exec {
  readonly id = randomBytes(6).toString('hex')
  readonly command: string
  readonly args: string[]
  /** Whether the client named a user: only then does the wire show `user`, as resolved `uid:gid`. */
  readonly explicitUser: boolean
  readonly launchSpec: ExecLaunch
  status: ExecStatus = 'CREATED'
  pid = 0
  /** -1 until the process exited (the CLI reads a negative value as "still running"). */
  exitCode = -1
  readonly frames: ExecFrame[] = []
  ended: ExecEnd | null = null
  process: RunningCommand | null = null
  private nextSequence = 1
  private waiters: Array<() => void> = []

  constructor(command: string, args: string[], explicitUser: boolean, launchSpec: ExecLaunch) {
    this.command = command
    this.args = args
    this.explicitUser = explicitUser
    this.launchSpec = launchSpec
  }

  private push(frame: Omit<ExecFrame, 'sequence' | 'timestamp'>): void {
    this.frames.push({ ...frame, sequence: this.nextSequence++, timestamp: new Date().toISOString() })
    this.wake()
  }

  output(type: 'stdout' | 'stderr', text: string): void {
    if (text !== '' && this.ended === null) this.push({ type, output: text })
  }

  /** The process exited: one last frame carries the code (unless the exec's output had already ended). */
  exited(code: number): void {
    if (this.status === 'EXITED') return
    this.status = 'EXITED'
    this.exitCode = code
    if (this.ended !== null) return
    this.push({ type: 'stdout', output: '', exitCode: code })
    this.ended = 'exited'
  }

  /** Deleted or its sandbox is gone: streams end without an exit frame. */
  end(how: 'deleted' | 'vanished'): void {
    if (this.ended === null) this.ended = how
    this.process?.kill()
    this.wake()
  }

  changed(): Promise<void> {
    if (this.ended !== null) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }

  /**
   * Index of the first frame to send for `lastSequence`: frames after that sequence; a negative value
   * counts back from the newest frame (-2: the last two); 0 or none: all.
   */
  startIndex(lastSequence: number | undefined): number {
    if (lastSequence === undefined || lastSequence === 0) return 0
    if (lastSequence < 0) return Math.max(0, this.frames.length + lastSequence)
    const index = this.frames.findIndex((frame) => frame.sequence > lastSequence)
    return index < 0 ? this.frames.length : index
  }

  toWire(): Record<string, unknown> {
    const wire: Record<string, unknown> = {
      id: this.id,
      command: this.command,
      args: [...this.args],
      status: this.status,
      pid: this.pid,
      pty: false,
      exitCode: this.exitCode,
    }
    if (this.explicitUser) wire.user = `${this.launchSpec.uid}:${this.launchSpec.gid}`
    return wire
  }
}

/** Feeds a running process into its exec: output frames as the process produces them, then the exit frame. */
export async function supervise(exec: Exec, proc: RunningCommand): Promise<void> {
  exec.process = proc
  exec.pid = proc.pid ?? 0
  exec.status = 'RUNNING'
  const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') }
  proc.stdout.on('data', (chunk: Buffer) => exec.output('stdout', decoders.stdout.write(chunk)))
  proc.stderr.on('data', (chunk: Buffer) => exec.output('stderr', decoders.stderr.write(chunk)))
  const status = await proc.exited
  // A background child may hold the pipes open forever (a sandbox is a VM: it keeps running); what the
  // exec itself wrote is already in the pipe, so a short wait for the close is enough to read it.
  let timer: NodeJS.Timeout | undefined
  await Promise.race([proc.closed, new Promise((resolve) => (timer = setTimeout(resolve, 200)))])
  clearTimeout(timer)
  exec.output('stdout', decoders.stdout.end())
  exec.output('stderr', decoders.stderr.end())
  if (status.startError) exec.output('stderr', `${status.startError}\n`)
  const code = status.code ?? (status.signal ? 128 + (osConstants.signals[status.signal] ?? 0) : 1)
  exec.exited(status.startError ? 127 : code)
}
