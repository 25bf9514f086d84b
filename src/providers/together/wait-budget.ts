/**
 * The waiting side of following a remote stream: one signal for every await (the caller's abort or
 * the deadline, so a silent socket cannot outlive the deadline), pauses that never overrun it, and
 * the translation of either abort into what the caller should see.
 */
import { realSleep, type Sleep } from '../../http/sleep.ts'

export interface WaitOptions {
  signal?: AbortSignal
  /** Absolute time on the `now` clock (monotonic ms) after which waiting fails. */
  deadline?: number
  now?: () => number
  sleep?: Sleep
}

/** The deadline passed while something was still being waited for. */
export class DeadlineExceededError extends Error {
  constructor(what: string) {
    super(`${what}: deadline reached`)
    this.name = 'DeadlineExceededError'
  }
}

export class WaitBudget {
  private readonly options: WaitOptions
  private readonly what: string
  private readonly now: () => number
  private readonly sleep: Sleep
  private deadlineSignal: AbortSignal | undefined

  constructor(options: WaitOptions, what: string) {
    this.options = options
    this.what = what
    this.now = options.now ?? (() => performance.now())
    this.sleep = options.sleep ?? realSleep
  }

  remaining(): number {
    return this.options.deadline === undefined ? Number.POSITIVE_INFINITY : this.options.deadline - this.now()
  }

  check(): void {
    this.options.signal?.throwIfAborted()
    if (this.remaining() <= 0) throw new DeadlineExceededError(this.what)
  }

  /** For one request or read: aborts on the caller's signal or at the deadline. */
  signal(): AbortSignal | undefined {
    const left = this.remaining()
    const signals: AbortSignal[] = []
    if (this.options.signal) signals.push(this.options.signal)
    if (Number.isFinite(left)) {
      this.deadlineSignal = AbortSignal.timeout(Math.max(1, Math.ceil(left)))
      signals.push(this.deadlineSignal)
    }
    return signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals)
  }

  /** The caller's abort as its reason, a deadline abort as DeadlineExceededError, anything else unchanged. */
  translate(error: unknown): unknown {
    if (this.options.signal?.aborted) return this.options.signal.reason
    // The timer may fire a fraction of a millisecond before the clock agrees; it is the deadline either way.
    if (this.remaining() <= 0 || this.deadlineSignal?.aborted === true) return new DeadlineExceededError(this.what)
    return error
  }

  /** True when `error` came from the caller's abort or the deadline rather than the remote side. */
  isOurs(error: unknown): boolean {
    return this.translate(error) !== error
  }

  async pause(ms: number): Promise<void> {
    this.check()
    try {
      await this.sleep(Math.min(ms, this.remaining()), this.signal())
    } catch (error) {
      throw this.translate(error)
    }
    this.check()
  }
}
