/**
 * Some Together routes are POSTs the service treats as idempotent: an alias upsert, a wait, a
 * terminate, an exec start, a file write. Repeating them after a 5xx or a dropped connection cannot
 * start anything twice, so they get the shared policy's full retry ladder, as a PUT would. Creates
 * never use this: the policy's POST rule (replay only on 425/429 or a connection that never carried
 * the request) stays theirs.
 */
import { RetryPolicy, type AttemptOutcome, type RetryDecision } from '../../http/retry.ts'

class IdempotentPostPolicy extends RetryPolicy {
  override decide(method: string, outcome: AttemptOutcome, attempt: number): RetryDecision {
    return super.decide(method.toUpperCase() === 'POST' ? 'PUT' : method, outcome, attempt)
  }
}

/** The same ladder and budget as `base`, with POST treated as idempotent. */
export function idempotentPost(base: RetryPolicy): RetryPolicy {
  return new IdempotentPostPolicy({ delaysMs: base.delaysMs, maxAttempts: base.maxAttempts, sleep: base.sleep })
}
