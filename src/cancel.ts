/**
 * The registry of live remote work, and what happens when the job is cancelled. Every operation id is
 * written to step state the moment it exists, so that even a hard kill leaves the post step a way to
 * cancel it. On SIGINT/SIGTERM the live work is cancelled at once (the runner allows ~7.5 s before
 * SIGTERM and ~10 s before a kill), then the main flow, aborted through the shared signal, records
 * the final state and the process exits non-zero.
 */
import * as core from '@actions/core'
import { errorMessage } from './errors.ts'
import { workKey, type LiveWork } from './state.ts'

export type CancelRemote = (work: LiveWork) => Promise<string>

/**
 * Where the lines of a cancellation go. They come at any moment (a signal, a DELETE's answer), also
 * while a run's stop-commands window is open, so main routes them past that window
 * (RemoteLog.afterWindow); the default prints them at once.
 */
export interface CancelLines {
  info(text: string): void
  warning(text: string): void
}

const PRINT_AT_ONCE: CancelLines = { info: (text) => core.info(text), warning: (text) => core.warning(text) }

export class RemoteWorkRegistry {
  private readonly work = new Map<string, LiveWork>()
  private readonly save: (work: readonly LiveWork[]) => void
  private readonly lines: CancelLines
  private cancelRemote: CancelRemote | undefined
  private readonly cancellations: Promise<unknown>[] = []

  constructor(save: (work: readonly LiveWork[]) => void, lines: CancelLines = PRINT_AT_ONCE) {
    this.save = save
    this.lines = lines
  }

  /** Records just-created work. If the job is already being cancelled, cancels it right away. */
  add(entry: Omit<LiveWork, 'state'>): void {
    const work: LiveWork = { ...entry, state: 'live' }
    this.work.set(workKey(work), work)
    this.persist()
    if (this.cancelRemote) this.cancellations.push(this.cancelOne(work, this.cancelRemote))
  }

  /** The action saw the work end (or, for a sandbox kept alive on purpose, hand it over). */
  finish(entry: Pick<LiveWork, 'provider' | 'kind' | 'id'>): void {
    const work = this.work.get(workKey(entry))
    if (!work || work.state === 'done') return
    work.state = 'done'
    this.persist()
  }

  all(): LiveWork[] {
    return [...this.work.values()]
  }

  live(): LiveWork[] {
    return [...this.work.values()].filter((work) => work.state !== 'done')
  }

  get cancelling(): boolean {
    return this.cancelRemote !== undefined
  }

  /** Cancels all live work in parallel; later `add`s are cancelled as they arrive. Resolves when all settled. */
  async cancelAll(cancelRemote: CancelRemote): Promise<void> {
    this.cancelRemote ??= cancelRemote
    for (const work of this.live()) this.cancellations.push(this.cancelOne(work, cancelRemote))
    await this.cancellationsSettled()
  }

  /** Cancels the live work `pick` chooses (e.g. one fan-out run's), now; resolves when those requests settled. */
  async cancelWhere(pick: (work: LiveWork) => boolean, cancelRemote: CancelRemote): Promise<void> {
    await Promise.allSettled(this.live().filter(pick).map((work) => this.cancelOne(work, cancelRemote)))
  }

  /**
   * Resolves once every cancellation requested so far has settled, including those of work that was
   * registered after the signal (a create whose answer arrived during the cancel).
   */
  async cancellationsSettled(): Promise<void> {
    for (let seen = -1; seen !== this.cancellations.length; ) {
      seen = this.cancellations.length
      await Promise.allSettled(this.cancellations)
    }
  }

  private async cancelOne(work: LiveWork, cancelRemote: CancelRemote): Promise<void> {
    if (work.state !== 'live') return
    work.state = 'cancel-requested'
    this.persist()
    try {
      const result = await cancelRemote(work)
      this.lines.info(`Cancelled ${work.label} (${work.kind} ${work.id}): ${result}`)
    } catch (error) {
      // Still live as far as anyone knows: the post step tries again.
      work.state = 'live'
      this.persist()
      this.lines.warning(`Could not cancel ${work.label} (${work.kind} ${work.id}); the post step will try again: ${errorMessage(error)}`)
    }
  }

  private persist(): void {
    this.save([...this.work.values()])
  }
}

export interface CancellationOptions {
  registry: RemoteWorkRegistry
  cancelRemote: CancelRemote
  /** Aborted on the first signal, so every request and wait in the main flow stops. */
  controller: AbortController
  /** Ends the process; injected so that only the entry file decides how. */
  exit: (code: number) => void
  /** After this long, exit even if the main flow has not wound down (it should long before). */
  graceMs?: number
  /** Where the handler's own lines go (default: printed at once); see {@link CancelLines}. */
  lines?: CancelLines
}

export interface Cancellation {
  /** The signal that arrived, if any. */
  readonly signal: NodeJS.Signals | undefined
  /**
   * Settles when the remote cancellation requests are done, also those of work registered after the
   * signal (immediately if no signal came).
   */
  settled(): Promise<void>
  dispose(): void
}

/** Installs SIGINT/SIGTERM handlers for the duration of the main flow. */
export function installCancellation(options: CancellationOptions): Cancellation {
  let received: NodeJS.Signals | undefined
  let cancelling: Promise<void> = Promise.resolve()
  const lines = options.lines ?? PRINT_AT_ONCE
  const onSignal = (signal: NodeJS.Signals): void => {
    if (received) {
      // A second signal (the runner's SIGTERM 7.5 s after SIGINT): state is already written; stop now.
      lines.info(`Received ${signal} while cancelling; exiting.`)
      options.exit(1)
      return
    }
    received = signal
    const live = options.registry.live()
    lines.info(`Received ${signal}: the job is being cancelled; cancelling ${live.length} remote operation(s).`)
    cancelling = options.registry.cancelAll(options.cancelRemote)
    options.controller.abort(new Error(`cancelled by ${signal}`))
    const timer = setTimeout(() => options.exit(1), options.graceMs ?? 6000)
    timer.unref()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return {
    get signal() {
      return received
    },
    settled: async () => {
      await cancelling
      await options.registry.cancellationsSettled()
    },
    dispose: () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    },
  }
}
