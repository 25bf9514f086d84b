// A build's log: the plain lines it printed and, once it is over, the control event that ends every stream
// of it (`{"done":true}` or `{"error":"…"}`). Readers wait for changes; the whole log is kept, because the
// builder replays it from the start on every connect.

export type BuildTerminal = { done: true } | { error: string }

export class BuildLog {
  readonly lines: string[] = []
  terminal: BuildTerminal | null = null
  private waiters: Array<() => void> = []

  append(line: string): void {
    if (this.terminal) return
    this.lines.push(line)
    this.wake()
  }

  finish(terminal: BuildTerminal): void {
    if (this.terminal) return
    this.terminal = terminal
    this.wake()
  }

  /** Resolves at the next change (at once when the log is over). */
  changed(): Promise<void> {
    if (this.terminal) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }
}

/**
 * Splits a process's output into log lines. SSE data cannot hold a line break, so `\r` (progress
 * redraws) ends a line as `\n` does; a partial line waits for the rest of it.
 */
export class LineSplitter {
  private partial = ''
  private readonly emit: (line: string) => void

  constructor(emit: (line: string) => void) {
    this.emit = emit
  }

  push(text: string): void {
    let combined = this.partial + text
    // A trailing CR may be the first half of a CRLF split across two reads.
    const held = combined.endsWith('\r') ? '\r' : ''
    if (held) combined = combined.slice(0, -1)
    const pieces = combined.split(/\r\n|\r|\n/)
    this.partial = (pieces.pop() ?? '') + held
    for (const piece of pieces) this.emit(piece)
  }

  flush(): void {
    const rest = this.partial.replace(/\r$/, '')
    if (rest !== '') this.emit(rest)
    this.partial = ''
  }
}
