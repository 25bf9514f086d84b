// How the emulator runs the root-fs operations (ops.ts) with typed arguments: in its own process
// when it is root, or in the helper process it starts inside the sandbox's user namespace.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { rootFsOps, type RootFsOps } from './ops.ts'

const HELPER = fileURLToPath(new URL('./helper.ts', import.meta.url))
const READY_TIMEOUT_MS = 20_000

export interface HelperIdentity {
  pid: number
  uid: number
  /** /proc/self/uid_map and gid_map of the helper: the mapping every sandbox shares. */
  uidMap: string
  gidMap: string
}

type OpArgs<K extends keyof RootFsOps> = Parameters<RootFsOps[K]>[0]
type OpResult<K extends keyof RootFsOps> = Awaited<ReturnType<RootFsOps[K]>>

export interface RootFs {
  /** Where the operations run: this process, or the helper (whose namespaces commands enter). */
  readonly identity: HelperIdentity
  call<K extends keyof RootFsOps>(op: K, args: OpArgs<K>): Promise<OpResult<K>>
  close(): Promise<void>
}

/** As root the operations need no other process: they run here, with the same code. */
export function inProcessRootFs(): RootFs {
  return {
    identity: { pid: process.pid, uid: process.getuid?.() ?? -1, uidMap: '', gidMap: '' },
    call: (op, args) => (rootFsOps[op] as (args: unknown) => Promise<never>)(args),
    close: async () => undefined,
  }
}

export class RootFsError extends Error {
  readonly code: string | null
  constructor(message: string, code: string | null) {
    super(message)
    this.code = code
  }
}

export class RootFsHelper implements RootFs {
  readonly identity: HelperIdentity
  private readonly child: ChildProcess
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  private nextId = 1
  private exited = false
  private stderr = ''

  private constructor(child: ChildProcess, identity: HelperIdentity, stderr: string) {
    this.child = child
    this.identity = identity
    this.stderr = stderr
  }

  /**
   * Starts the helper as `[...prefix, node, script]`; `prefix` is the `unshare` that makes the user namespace.
   * `script` is helper.ts unless another emulator brings its own, which must answer every operation of
   * ops.ts (and may answer more) over the same line protocol.
   */
  static async start(prefix: readonly string[], script: string = HELPER): Promise<RootFsHelper> {
    const argv = [...prefix, process.execPath, script]
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } })
    let stderr = ''
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)))
    let buffered = ''
    let fs: RootFsHelper | null = null
    const identity = await new Promise<HelperIdentity>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the root-fs helper did not start within ${READY_TIMEOUT_MS / 1000} s: ${stderr}`)), READY_TIMEOUT_MS)
      child.once('error', (error) => {
        clearTimeout(timer)
        reject(new Error(`cannot start ${argv[0]}: ${error.message}`))
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`${argv.join(' ')} exited (${signal ?? code}) before it was ready: ${stderr.trim() || 'no output'}`))
      })
      child.stdout?.setEncoding('utf8')
      child.stdout?.on('data', (chunk: string) => {
        buffered += chunk
        for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
          const line = buffered.slice(0, newline)
          buffered = buffered.slice(newline + 1)
          const message = JSON.parse(line) as { ready?: HelperIdentity; id?: number; result?: unknown; error?: { message: string; code: string | null } }
          if (message.ready) {
            clearTimeout(timer)
            resolve(message.ready)
          } else if (fs && message.id !== undefined) {
            fs.settle(message.id, message.result, message.error)
          }
        }
      })
    })
    fs = new RootFsHelper(child, identity, stderr)
    child.removeAllListeners('exit')
    child.on('exit', () => fs?.failAll())
    child.stderr?.on('data', (chunk: string) => {
      if (fs) fs.stderr = (fs.stderr + chunk).slice(-4000)
    })
    fs.idle()
    return fs
  }

  call<K extends keyof RootFsOps>(op: K, args: OpArgs<K>): Promise<OpResult<K>> {
    if (this.exited) return Promise.reject(new RootFsError(`the root-fs helper has exited: ${this.stderr.trim()}`, null))
    const id = this.nextId++
    const promise = new Promise<OpResult<K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
    })
    this.busy()
    this.child.stdin?.write(JSON.stringify({ id, op, args }) + '\n')
    return promise
  }

  /** Ends the helper (it exits when its stdin closes) and waits for it. */
  async close(): Promise<void> {
    if (this.exited) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    // Held until it has exited, or a closing emulator could leave the process before its helper.
    this.busy()
    this.child.stdin?.end()
    await exited
  }

  private settle(id: number, result: unknown, error: { message: string; code: string | null } | undefined): void {
    const waiter = this.pending.get(id)
    if (!waiter) return
    this.pending.delete(id)
    if (error) waiter.reject(new RootFsError(error.message, error.code))
    else waiter.resolve(result)
    if (this.pending.size === 0) this.idle()
  }

  private failAll(): void {
    this.exited = true
    for (const waiter of this.pending.values()) waiter.reject(new RootFsError(`the root-fs helper exited: ${this.stderr.trim()}`, null))
    this.pending.clear()
  }

  // An idle helper must not keep the emulator's process alive; a pending call must.
  private idle(): void {
    this.child.unref()
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.()
  }

  private busy(): void {
    this.child.ref()
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as unknown as { ref?: () => void } | null)?.ref?.()
  }
}
