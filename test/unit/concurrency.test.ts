import { describe, expect, it } from 'vitest'
import { forEachLimit, mapLimit } from '../../src/concurrency.ts'

const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('mapLimit', () => {
  it('keeps at most `limit` in flight and returns results in input order', async () => {
    let active = 0
    let peak = 0
    const results = await mapLimit([5, 1, 4, 2, 3], 2, async (n) => {
      active++
      peak = Math.max(peak, active)
      for (let i = 0; i < n; i++) await tick()
      active--
      return n * 10
    })
    expect(results).toEqual([50, 10, 40, 20, 30])
    expect(peak).toBe(2)
  })

  it('starts nothing new after a failure and settles every started item before rejecting', async () => {
    const started: number[] = []
    const finished: number[] = []
    const run = mapLimit([0, 1, 2, 3], 2, async (n) => {
      started.push(n)
      if (n === 0) throw new Error('first failed')
      for (let i = 0; i < 5; i++) await tick()
      finished.push(n)
      return n
    })
    await expect(run).rejects.toThrow('first failed')
    expect(started).toEqual([0, 1])
    expect(finished).toEqual([1])
  })

  it('handles an empty list', async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([])
  })
})

describe('forEachLimit', () => {
  it('starts nothing once stopStarting is aborted, waits for the started items, and says how many started', async () => {
    const stop = new AbortController()
    const started: number[] = []
    const finished: number[] = []
    const count = await forEachLimit(
      [0, 1, 2, 3, 4, 5],
      2,
      async (n) => {
        started.push(n)
        if (n === 1) stop.abort()
        for (let i = 0; i < 5; i++) await tick()
        finished.push(n)
      },
      { stopStarting: stop.signal },
    )
    expect(started).toEqual([0, 1])
    expect(finished.sort()).toEqual([0, 1])
    expect(count).toBe(2)
  })

  it('starts nothing when stopStarting is already aborted', async () => {
    const started: number[] = []
    const count = await forEachLimit([0, 1], 2, async (n) => void started.push(n), { stopStarting: AbortSignal.abort() })
    expect(started).toEqual([])
    expect(count).toBe(0)
  })
})
