// Deterministic fault injection: rules are consumed in the order added; each application is recorded. A rule
// whose kind cannot apply to a request (a stream fault on a JSON route, a start fault elsewhere than
// sandbox create) is skipped and stays pending.
import { checkRuleBasics, checkRuleTimesAndKind, FaultQueue } from '../shared/fault-rules.ts'
import type { FaultAction, FaultRule, Surface } from './types.ts'

export const STREAM_KINDS: ReadonlySet<FaultAction['kind']> = new Set(['cut-stream', 'end-stream', 'error-event'])
export const START_KINDS: ReadonlySet<FaultAction['kind']> = new Set(['slow-start', 'failed-to-start'])
const ALL_KINDS: ReadonlySet<FaultAction['kind']> = new Set([
  ...STREAM_KINDS,
  ...START_KINDS,
  'status',
  'status-after',
  'drop-before-response',
  'hang',
])
const SURFACES: ReadonlySet<string> = new Set(['api', 'builder', 'agent'])

/** What the server knows about a request when it looks for a fault. */
export interface FaultTarget {
  server: Surface
  method: string
  path: string
  /** Builder logs or exec io: stream faults apply. */
  isStream: boolean
  /** Builder logs: `error-event` applies. */
  isBuildLog: boolean
  /** `POST /v1/sandboxes`: start faults apply. */
  isSandboxCreate: boolean
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0
}

/** Checks a rule that may have arrived as JSON from another process; throws a readable error. */
export function validateRule(value: unknown): FaultRule {
  const rule = checkRuleBasics<FaultRule>(value)
  if (rule.server !== undefined && !SURFACES.has(rule.server)) throw new Error('fault rule "server" must be api, builder or agent')
  const action = checkRuleTimesAndKind(rule, ALL_KINDS)
  if ((action.kind === 'status' || action.kind === 'status-after') && !(Number.isInteger(action.status) && action.status >= 100 && action.status <= 599)) {
    throw new Error(`${action.kind} fault needs an HTTP "status"`)
  }
  if (STREAM_KINDS.has(action.kind) && !isCount((action as { afterEvents?: unknown }).afterEvents)) {
    throw new Error(`${action.kind} fault needs "afterEvents" (a count, 0 or more)`)
  }
  if (action.kind === 'slow-start' && !isCount(action.delayMs)) throw new Error('slow-start fault needs "delayMs"')
  if (action.kind === 'failed-to-start' && action.reason !== undefined && !['internal_error', 'out_of_capacity'].includes(action.reason)) {
    throw new Error('failed-to-start "reason" must be internal_error or out_of_capacity')
  }
  return rule as FaultRule
}

function applies(kind: FaultAction['kind'], target: FaultTarget): boolean {
  if (kind === 'error-event') return target.isBuildLog
  if (STREAM_KINDS.has(kind)) return target.isStream
  if (START_KINDS.has(kind)) return target.isSandboxCreate
  return true
}

/** The rule queue (shared/fault-rules.ts) with this emulator's rules: a rule can name its server. */
export class FaultRules extends FaultQueue<FaultRule, FaultAction> {
  constructor() {
    super(validateRule)
  }

  /** Picks the first rule that matches and can apply, and uses one of its applications. */
  take(target: FaultTarget, requestIndex: number): FaultAction | undefined {
    return this.takeMatching(target.method, target.path, requestIndex, (rule) => (!rule.server || rule.server === target.server) && applies(rule.action.kind, target))
  }
}
