// Deterministic fault injection: rules are consumed in the order added; each application is recorded.
import type { AppliedFault, FaultAction, FaultController, FaultRule } from './types.ts'

const STREAM_KINDS = new Set<FaultAction['kind']>([
  'cut-stream',
  'sse-error',
  'broken-chunking',
  'truncated-gzip',
  'corrupt-gzip',
  'stall',
  'keepalive-only',
  'slow-drip',
  'events-unavailable',
])
const ALL_KINDS = new Set<FaultAction['kind']>([
  ...STREAM_KINDS,
  'status',
  'drop-before-response',
  'drop-after-response',
  'hang',
])

export function isStreamFault(action: FaultAction): boolean {
  return STREAM_KINDS.has(action.kind)
}

interface LiveRule {
  rule: FaultRule
  pattern: RegExp
  remaining: number
}

/** Checks a rule that may have arrived as JSON from another process; throws a readable error. */
export function validateRule(value: unknown): FaultRule {
  if (value === null || typeof value !== 'object') throw new Error('fault rule must be an object')
  const rule = value as Partial<FaultRule>
  if (typeof rule.path !== 'string') throw new Error('fault rule needs "path" (a regular expression source)')
  try {
    new RegExp(rule.path)
  } catch {
    throw new Error(`fault rule path is not a valid regular expression: ${rule.path}`)
  }
  if (rule.method !== undefined && typeof rule.method !== 'string') throw new Error('fault rule "method" must be a string')
  if (rule.times !== undefined && (!Number.isInteger(rule.times) || rule.times < 1)) {
    throw new Error('fault rule "times" must be a positive integer')
  }
  const action = rule.action as FaultAction | undefined
  if (!action || typeof action !== 'object' || !ALL_KINDS.has(action.kind)) {
    throw new Error(`fault rule "action.kind" must be one of ${[...ALL_KINDS].join(', ')}`)
  }
  if (action.kind === 'status' && !Number.isInteger(action.status)) throw new Error('status fault needs an integer "status"')
  const fields = action as unknown as Record<string, unknown>
  for (const key of ['afterEvents', 'afterBytes', 'count', 'delayMs']) {
    const value = fields[key]
    if (value !== undefined && (!Number.isInteger(value) || (value as number) < 0)) {
      throw new Error(`${action.kind} fault: "${key}" must be a non-negative integer`)
    }
  }
  const needsAfterEvents = ['sse-error', 'broken-chunking', 'truncated-gzip', 'corrupt-gzip', 'stall']
  if (needsAfterEvents.includes(action.kind) && fields.afterEvents === undefined) {
    throw new Error(`${action.kind} fault needs "afterEvents" (frames sent before it)`)
  }
  if (action.kind === 'cut-stream') {
    if (fields.within !== undefined && fields.within !== 'frame' && fields.within !== 'utf8-character') {
      throw new Error('cut-stream fault: "within" must be "frame" or "utf8-character"')
    }
    if (fields.partialChunk !== undefined && typeof fields.partialChunk !== 'boolean') {
      throw new Error('cut-stream fault: "partialChunk" must be a boolean')
    }
  }
  if (action.kind === 'slow-drip' && fields.delayMs === undefined) throw new Error('slow-drip fault needs "delayMs"')
  return rule as FaultRule
}

export class FaultRules implements FaultController {
  private rules: LiveRule[] = []
  private log: AppliedFault[] = []

  add(...rules: FaultRule[]): void {
    for (const raw of rules) {
      const rule = validateRule(raw)
      this.rules.push({ rule, pattern: new RegExp(rule.path), remaining: rule.times ?? 1 })
    }
  }

  clear(): void {
    this.rules = []
    this.log = []
  }

  pending(): FaultRule[] {
    return this.rules.map((live) => ({ ...live.rule, times: live.remaining }))
  }

  applied(): AppliedFault[] {
    return [...this.log]
  }

  /**
   * Picks the first rule matching this request and uses one of its applications. Stream faults
   * only make sense on the events route, so they are skipped elsewhere (and stay pending).
   */
  take(method: string, path: string, isEventsRoute: boolean, requestIndex: number): FaultAction | undefined {
    for (let i = 0; i < this.rules.length; i++) {
      const live = this.rules[i] as LiveRule
      if (live.rule.method && live.rule.method.toUpperCase() !== method.toUpperCase()) continue
      if (!live.pattern.test(path)) continue
      if (!isEventsRoute && isStreamFault(live.rule.action)) continue
      live.remaining -= 1
      if (live.remaining <= 0) this.rules.splice(i, 1)
      this.log.push({ requestIndex, method, path, action: live.rule.action })
      return live.rule.action
    }
    return undefined
  }
}
