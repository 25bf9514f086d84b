/**
 * Runs `worker` over `items` with at most `limit` in flight. On the first failure no new item starts,
 * and the call rejects only after every started item has settled, so nothing keeps running detached.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, worker: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  let failure: { error: unknown } | undefined
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (!failure && next < items.length) {
      const index = next++
      try {
        results[index] = await worker(items[index] as T, index)
      } catch (error) {
        failure ??= { error }
      }
    }
  })
  await Promise.all(lanes)
  if (failure) throw failure.error
  return results
}
