import { describe, expect, it } from 'vitest'
import { RequestTimeoutError, TransportError } from '../../src/http/errors.ts'
import { RetryPolicy, ladderDelay } from '../../src/http/retry.ts'
import { parseRetryAfter } from '../../src/http/retry-after.ts'

const refused = new TransportError({ method: 'POST', url: 'u', code: 'ECONNREFUSED', requestSent: false })
const reset = new TransportError({ method: 'GET', url: 'u', code: 'ECONNRESET', requestSent: true })
const timeout = new RequestTimeoutError({ method: 'GET', url: 'u', timeoutMs: 1, phase: 'headers' })

describe('RetryPolicy.decide', () => {
  const policy = new RetryPolicy()
  const cases: Array<[string, Parameters<RetryPolicy['decide']>[1], boolean]> = [
    ['GET', { status: 500 }, true],
    ['GET', { status: 502 }, true],
    ['GET', { status: 599 }, true],
    ['GET', { status: 408 }, true],
    ['GET', { status: 410 }, true],
    ['GET', { status: 425 }, true],
    ['GET', { status: 429 }, true],
    ['GET', { status: 400 }, false],
    ['GET', { status: 401 }, false],
    ['GET', { status: 403 }, false],
    ['GET', { status: 404 }, false],
    ['GET', { status: 409 }, false],
    ['GET', { status: 422 }, false],
    ['GET', { status: 200 }, false],
    ['GET', { status: 200, retryAfterMs: 5 }, false],
    ['GET', { status: 302 }, false],
    ['HEAD', { status: 503 }, true],
    ['OPTIONS', { status: 503 }, true],
    ['PUT', { status: 503 }, true],
    ['DELETE', { status: 503 }, true],
    ['delete', { status: 503 }, true],
    ['GET', { error: reset }, true],
    ['GET', { error: refused }, true],
    ['DELETE', { error: reset }, true],
    ['GET', { error: timeout }, false],
    ['POST', { status: 500 }, false],
    ['POST', { status: 503 }, false],
    ['POST', { status: 408 }, false],
    ['POST', { status: 410 }, false],
    ['POST', { status: 425 }, true],
    ['POST', { status: 429 }, true],
    ['POST', { status: 400 }, false],
    ['POST', { error: reset }, false],
    ['POST', { error: refused }, true],
    ['POST', { error: timeout }, false],
    ['PATCH', { status: 502 }, false],
    ['PATCH', { status: 429 }, true],
    ['PATCH', { error: reset }, false],
    ['PATCH', { error: refused }, true],
  ]
  it.each(cases)('%s %o → retry %s', (method, outcome, retry) => {
    expect(policy.decide(method, outcome, 1).retry).toBe(retry)
  })

  it('walks the ladder and repeats its tail', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((attempt) => {
      const decision = policy.decide('GET', { status: 503 }, attempt)
      return decision.retry ? decision.delayMs : -1
    })
    expect(delays).toEqual([100, 200, 500, 1000, 2000, 5000, 5000, 5000, 5000])
  })

  it('is bounded by maxAttempts, counting the first attempt', () => {
    expect(policy.decide('GET', { status: 503 }, 9).retry).toBe(true)
    expect(policy.decide('GET', { status: 503 }, 10).retry).toBe(false)
    const one = new RetryPolicy({ maxAttempts: 1 })
    expect(one.decide('GET', { status: 503 }, 1).retry).toBe(false)
    const two = new RetryPolicy({ maxAttempts: 2, delaysMs: [7] })
    expect(two.decide('GET', { status: 503 }, 1)).toEqual({ retry: true, delayMs: 7 })
    expect(two.decide('GET', { status: 503 }, 2)).toEqual({ retry: false })
  })

  it('lets Retry-After replace the ladder delay, including zero', () => {
    expect(policy.decide('GET', { status: 503, retryAfterMs: 3000 }, 1)).toEqual({ retry: true, delayMs: 3000 })
    expect(policy.decide('POST', { status: 429, retryAfterMs: 0 }, 4)).toEqual({ retry: true, delayMs: 0 })
    expect(policy.decide('GET', { status: 425, retryAfterMs: 1500 }, 7)).toEqual({ retry: true, delayMs: 1500 })
  })

  it('uses custom delays', () => {
    const custom = new RetryPolicy({ delaysMs: [10, 20] })
    expect(custom.decide('GET', { status: 500 }, 1)).toEqual({ retry: true, delayMs: 10 })
    expect(custom.decide('GET', { status: 500 }, 2)).toEqual({ retry: true, delayMs: 20 })
    expect(custom.decide('GET', { status: 500 }, 5)).toEqual({ retry: true, delayMs: 20 })
    expect(ladderDelay([], 3)).toBe(0)
  })
})

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  it.each([
    ['0', 0],
    ['3', 3000],
    ['1.5', 1500],
    ['-5', 0],
    ['  2 ', 2000],
    ['100000', 60000],
    ['Thu, 01 Jan 2026 00:00:10 GMT', 10000],
    ['Wed, 31 Dec 2025 23:59:00 GMT', 0],
    ['Thu, 01 Jan 2026 01:00:00 GMT', 60000],
  ])('%j → %d ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected)
  })
  it.each([undefined, '', 'soon', 'inf', 'nan', 'Infinity', 'NaN', '1e999', '12abc'])('%j is ignored', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined()
  })
})
