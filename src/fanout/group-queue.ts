/**
 * The fan-out's one writer of the log. Groups cannot nest or interleave (platform notes §2.2), and a
 * plain line printed while a group is open lands inside it (and inside its stop-commands window, where
 * a workflow command is inert). So groups are written one at a time in the order they were queued,
 * and plain lines (progress, fail-fast notices, annotations) are printed between groups: at once when
 * no group is being written, else right after the one that is.
 */
export class GroupQueue {
  readonly #print: (line: string) => void
  readonly #queue: (() => Promise<void>)[] = []
  #draining: Promise<void> | undefined
  #writing = false
  #lines: string[] = []
  /** Only the latest progress line matters; it is made when it can be printed. */
  #progress: (() => string) | undefined
  #failure: { error: unknown } | undefined

  constructor(print: (line: string) => void) {
    this.#print = print
  }

  /** True while a group is being written. */
  get writing(): boolean {
    return this.#writing
  }

  /** Queues `write`, which opens, fills and ends one group (and may print right after it). */
  enqueue(write: () => Promise<void>): void {
    this.#queue.push(write)
    this.#draining ??= this.#drain()
  }

  /** A plain line between groups. */
  say(line: string): void {
    if (this.#writing) this.#lines.push(line)
    else this.#print(line)
  }

  /** A progress line, made when it can be printed; a newer one replaces one still waiting. */
  progress(make: () => string): void {
    if (this.#writing) this.#progress = make
    else this.#print(make())
  }

  /** Resolves once every queued group is written; rejects with the first error a write threw. */
  async idle(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining
    if (this.#failure !== undefined) throw this.#failure.error
  }

  async #drain(): Promise<void> {
    try {
      for (let write = this.#queue.shift(); write !== undefined; write = this.#queue.shift()) {
        this.#writing = true
        try {
          await write()
        } catch (error) {
          // Later groups are still written: one broken write must not hide the others' output.
          this.#failure ??= { error }
        } finally {
          this.#writing = false
        }
        for (const line of this.#lines.splice(0)) this.#print(line)
        const progress = this.#progress
        this.#progress = undefined
        if (progress !== undefined) this.#print(progress())
      }
    } finally {
      this.#draining = undefined
    }
  }
}
