// Deterministic fault injection: rules are consumed in the order added; each application is recorded.
import { checkRuleBasics, checkRuleTimesAndKind, FaultQueue } from '../shared/fault-rules.ts'
import type { FaultAction, FaultRule } from './types.ts'

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

/** Checks a rule that may have arrived as JSON from another process; throws a readable error. */
export function validateRule(value: unknown): FaultRule {
  const rule = checkRuleBasics<FaultRule>(value)
  const action = checkRuleTimesAndKind(rule, ALL_KINDS)
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

/** The rule queue (shared/fault-rules.ts) with this emulator's rules. */
export class FaultRules extends FaultQueue<FaultRule, FaultAction> {
  constructor() {
    super(validateRule)
  }

  /**
   * Picks the first rule matching this request and uses one of its applications. Stream faults
   * only make sense on the events route, so they are skipped elsewhere (and stay pending).
   */
  take(method: string, path: string, isEventsRoute: boolean, requestIndex: number): FaultAction | undefined {
    return this.takeMatching(method, path, requestIndex, (rule) => isEventsRoute || !isStreamFault(rule.action))
  }
}
