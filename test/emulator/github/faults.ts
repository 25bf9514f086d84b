// Fault injection and request gates. Faults are consumed in the order added. Gates hold requests
// before they are processed, which is how a test makes two clients race deterministically: a listing
// that waits until the other client's POST has been answered, or N requests released together.
import type { FaultRule, GitHubFault, RequestMatch } from './types.ts'

export interface MatchTarget {
  method: string
  path: string
  token: string | undefined
}

export function matches(match: RequestMatch, target: MatchTarget): boolean {
  if (match.method !== undefined && match.method.toUpperCase() !== target.method.toUpperCase()) return false
  if (match.token !== undefined && match.token !== target.token) return false
  return match.path === undefined || match.path.test(target.path)
}

interface LiveFault {
  rule: FaultRule
  remaining: number
}

export class Faults {
  private live: LiveFault[] = []

  add(...rules: FaultRule[]): void {
    for (const rule of rules) {
      const times = rule.times ?? 1
      if (!Number.isInteger(times) || times < 1) throw new Error('fault rule "times" must be a positive integer')
      this.live.push({ rule, remaining: times })
    }
  }

  clear(): void {
    this.live = []
  }

  /** Rules not used up yet, with what remains of their `times`. */
  pending(): FaultRule[] {
    return this.live.map(({ rule, remaining }) => ({ ...rule, times: remaining }))
  }

  /** The first rule matching the request, using one of its applications. */
  take(target: MatchTarget): GitHubFault | undefined {
    const index = this.live.findIndex((live) => matches(live.rule, target))
    if (index < 0) return undefined
    const live = this.live[index] as LiveFault
    live.remaining -= 1
    if (live.remaining <= 0) this.live.splice(index, 1)
    return live.rule.fault
  }
}

interface Hold {
  kind: 'until'
  match: RequestMatch
  until: RequestMatch
  remaining: number
  /** Answers to `until` still to come before the held requests go on. */
  answersNeeded: number
  waiting: Array<() => void>
}

interface Barrier {
  kind: 'barrier'
  match: RequestMatch
  parties: number
  waiting: Array<() => void>
}

export class Gates {
  private gates: Array<Hold | Barrier> = []

  /**
   * The next `times` requests matching `match` wait, unprocessed, until `untilAnswers` requests
   * matching `until` have been answered (counting only answers after this call).
   */
  holdUntil(match: RequestMatch, until: RequestMatch, options: { times?: number; untilAnswers?: number } = {}): void {
    this.gates.push({
      kind: 'until',
      match,
      until,
      remaining: options.times ?? 1,
      answersNeeded: options.untilAnswers ?? 1,
      waiting: [],
    })
  }

  /** The first `parties` requests matching `match` wait until the last of them has arrived. */
  barrier(match: RequestMatch, parties: number): void {
    if (!Number.isInteger(parties) || parties < 2) throw new Error('a barrier needs at least 2 parties')
    this.gates.push({ kind: 'barrier', match, parties, waiting: [] })
  }

  /** Resolves when the request may be processed. */
  admit(target: MatchTarget): Promise<void> {
    for (const gate of this.gates) {
      if (!matches(gate.match, target)) continue
      if (gate.kind === 'until') {
        if (gate.remaining <= 0) continue
        gate.remaining -= 1
        return new Promise((resolve) => gate.waiting.push(resolve))
      }
      if (gate.waiting.length < gate.parties) {
        const arrived = new Promise<void>((resolve) => gate.waiting.push(resolve))
        if (gate.waiting.length === gate.parties) this.open(gate)
        return arrived
      }
    }
    return Promise.resolve()
  }

  /** Tells the gates a request has been answered. */
  answered(target: MatchTarget): void {
    for (const gate of [...this.gates]) {
      if (gate.kind === 'until' && matches(gate.until, target) && --gate.answersNeeded <= 0) this.open(gate)
    }
  }

  /** Lets every held request through (used on close so nothing hangs). */
  openAll(): void {
    for (const gate of [...this.gates]) this.open(gate)
  }

  private open(gate: Hold | Barrier): void {
    this.gates = this.gates.filter((g) => g !== gate)
    for (const resolve of gate.waiting) resolve()
  }
}
