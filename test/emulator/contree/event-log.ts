// Per-operation event log. Output chunks are kept as raw Buffers and encoded only when sent, so
// a large output is never copied or re-encoded while it sits in the retained log.
import { encodeStream } from './stream-repr.ts'

export interface LoggedEvent {
  id: number
  ts: string
  spid: number
  type: string
  data?: Record<string, unknown>
  /** stdout/stderr payload, encoded by the ascii/base64 rule on send. */
  raw?: Buffer
}

export class EventLog {
  readonly events: LoggedEvent[] = []
  /** True once `completion` was appended: nothing more will come. */
  finished = false
  private waiters: Array<() => void> = []

  append(spid: number, type: string, data: Record<string, unknown>): LoggedEvent {
    return this.push({ id: this.events.length, ts: new Date().toISOString(), spid, type, data })
  }

  appendOutput(spid: number, type: 'stdout' | 'stderr', raw: Buffer): LoggedEvent {
    return this.push({ id: this.events.length, ts: new Date().toISOString(), spid, type, raw })
  }

  finish(data: Record<string, unknown>): LoggedEvent {
    const event = this.append(0, 'completion', data)
    this.finished = true
    this.wake()
    return event
  }

  /** Resolves at the next append (or at once if the log is finished). */
  changed(): Promise<void> {
    if (this.finished) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  private push(event: LoggedEvent): LoggedEvent {
    this.events.push(event)
    this.wake()
    return event
  }

  private wake(): void {
    const waiters = this.waiters
    if (waiters.length === 0) return
    this.waiters = []
    for (const wake of waiters) wake()
  }
}

export function eventJson(event: LoggedEvent): string {
  const data = event.raw ? encodeStream(event.raw) : (event.data ?? {})
  return JSON.stringify({ id: event.id, ts: event.ts, spid: event.spid, type: event.type, data })
}

/** One SSE frame: `id`, `event` (= type) and the whole event object as one `data` line. */
export function sseFrame(event: LoggedEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${eventJson(event)}\n\n`
}
