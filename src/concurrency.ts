export interface LimitOptions {
  /** Once aborted, no further item starts; items already started run to their end. */
  stopStarting?: AbortSignal
}

/**
 * Runs `worker` over `items`, in order, with at most `limit` in flight. No new item starts after a
 * worker throws or once `options.stopStarting` is aborted, and the call settles only after every
 * started item has settled, so nothing keeps running detached; then it rejects with the first error.
 * Resolves to the number of items that were started.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  worker: (item: T, index: number) => Promise<void>,
  options: LimitOptions = {},
): Promise<number> {
  let next = 0
  let failure: { error: unknown } | undefined
  const stopped = (): boolean => failure !== undefined || options.stopStarting?.aborted === true
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (!stopped() && next < items.length) {
      const index = next++
      try {
        await worker(items[index] as T, index)
      } catch (error) {
        failure ??= { error }
      }
    }
  })
  await Promise.all(lanes)
  if (failure) throw failure.error
  return next
}

/**
 * {@link forEachLimit} collecting each worker's result, in input order. On the first failure no new
 * item starts, and the call rejects only after every started item has settled.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, worker: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  await forEachLimit(items, limit, async (item, index) => {
    results[index] = await worker(item, index)
  })
  return results
}
