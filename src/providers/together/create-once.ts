/**
 * Creates that must not happen twice (a snapshot registration, a sandbox). When a create fails in a
 * way that leaves it unknown whether the service acted on it (a 5xx, a timeout, a connection lost
 * after the request went out), what it would have made is looked for first, by a tag only this
 * create carries; only when it is not there is the create sent again, a bounded number of times.
 */
import { HttpError, RequestTimeoutError, TransportError } from '../../http/errors.ts'
import { DEFAULT_DELAYS_MS, ladderDelay } from '../../http/retry.ts'
import { realSleep, type Sleep } from '../../http/sleep.ts'

/** True when the service may have acted on a create that failed this way. */
export function isAmbiguousFailure(error: unknown): boolean {
  if (error instanceof HttpError) return error.status >= 500 || error.status === 408
  if (error instanceof TransportError) return error.requestSent
  return error instanceof RequestTimeoutError
}

export interface CreateOnceOptions<T> {
  /** Sends the create once (its own client may still replay what provably did not arrive). */
  create: (stopRetrying: AbortSignal | undefined) => Promise<T>
  /** Looks for what an earlier attempt may have created; null when there is none. */
  find: () => Promise<T | null>
  /** After this is aborted no new create is sent; a lookup still is, so nothing made goes unnoticed. */
  stopRetrying?: AbortSignal
  attempts?: number
  sleep?: Sleep
  log?: (message: string) => void
  what: string
}

const DEFAULT_ATTEMPTS = 3

export async function createOnce<T>(opts: CreateOnceOptions<T>): Promise<T> {
  const attempts = opts.attempts ?? DEFAULT_ATTEMPTS
  const sleep = opts.sleep ?? realSleep
  for (let attempt = 1; ; attempt++) {
    try {
      return await opts.create(opts.stopRetrying)
    } catch (error) {
      if (!isAmbiguousFailure(error)) throw error
      opts.log?.(`${opts.what}: ${(error as Error).message}; looking for what it may have created before trying again`)
      const found = await opts.find()
      if (found !== null) {
        opts.log?.(`${opts.what}: found it; not creating again`)
        return found
      }
      if (attempt >= attempts || opts.stopRetrying?.aborted) throw error
      await sleep(ladderDelay(DEFAULT_DELAYS_MS, attempt + 2), opts.stopRetrying)
    }
  }
}
