/** The bench's handle on the replay server process: start it, load an operation, read its stats. */
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PayloadKind } from './payloads.ts'
import type { StreamCost } from './replay-server.ts'

const ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'replay-process.ts')

export interface LoadedOperation {
  operationId: string
  imageId: string
  frames: number
  stdoutEvents: number
  sseBytes: number
  wireBytes: number
  buildMs: number
}

export interface ReplayStats {
  requests: { method: string; path: string; lastEventId: string | null }[]
  streams: StreamCost[]
}

export class ReplayProcess {
  readonly url: string
  readonly #child: ChildProcess

  private constructor(url: string, child: ChildProcess) {
    this.url = url
    this.#child = child
  }

  static async start(token: string): Promise<ReplayProcess> {
    // stdin is the lifeline: when the bench dies, the server sees EOF and exits.
    const child = spawn(process.execPath, [ENTRY, token], { stdio: ['pipe', 'pipe', 'inherit'] })
    const url = await new Promise<string>((resolve, reject) => {
      let seen = ''
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        seen += chunk
        const match = /REPLAY_URL=(\S+)\n/.exec(seen)
        if (match) resolve(match[1] as string)
      })
      child.once('exit', (code) => reject(new Error(`replay server exited (${code}) before it listened`)))
      child.once('error', reject)
    })
    return new ReplayProcess(url, child)
  }

  get pid(): number | undefined {
    return this.#child.pid
  }

  async load(payload: PayloadKind, eventBytes: number, totalBytes: number): Promise<LoadedOperation> {
    return this.#call<LoadedOperation>('POST', '/_replay/load', { payload, eventBytes, totalBytes })
  }

  async stats(): Promise<ReplayStats> {
    return this.#call<ReplayStats>('GET', '/_replay/stats')
  }

  async resetStats(): Promise<void> {
    await this.#call('POST', '/_replay/reset', {})
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return
    const exited = new Promise((resolve) => this.#child.once('exit', resolve))
    this.#child.stdin?.end()
    await exited
  }

  async #call<T>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}${route}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    const value = (await res.json()) as T & { error?: string }
    if (!res.ok) throw new Error(`replay server ${method} ${route}: HTTP ${res.status} ${value.error ?? ''}`)
    return value
  }
}
