// Deterministic fault injection: rules are consumed in the order added; each application is recorded. A rule
// whose kind cannot apply to a request (a stream fault on a JSON route, a start fault elsewhere than
// sandbox create) is skipped and stays pending.
import type { AppliedFault, FaultAction, FaultController, FaultRule, Surface } from './types.ts'

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
  if (value === null || typeof value !== 'object') throw new Error('fault rule must be an object')
  const rule = value as Partial<FaultRule>
  if (typeof rule.path !== 'string') throw new Error('fault rule needs "path" (a regular expression source)')
  try {
    new RegExp(rule.path)
  } catch {
    throw new Error(`fault rule path is not a valid regular expression: ${rule.path}`)
  }
  if (rule.method !== undefined && typeof rule.method !== 'string') throw new Error('fault rule "method" must be a string')
  if (rule.server !== undefined && !SURFACES.has(rule.server)) throw new Error('fault rule "server" must be api, builder or agent')
  if (rule.times !== undefined && (!Number.isInteger(rule.times) || rule.times < 1)) {
    throw new Error('fault rule "times" must be a positive integer')
  }
  const action = rule.action as FaultAction | undefined
  if (!action || typeof action !== 'object' || !ALL_KINDS.has(action.kind)) {
    throw new Error(`fault rule "action.kind" must be one of ${[...ALL_KINDS].join(', ')}`)
  }
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

interface LiveRule {
  rule: FaultRule
  pattern: RegExp
  remaining: number
}

function applies(kind: FaultAction['kind'], target: FaultTarget): boolean {
  if (kind === 'error-event') return target.isBuildLog
  if (STREAM_KINDS.has(kind)) return target.isStream
  if (START_KINDS.has(kind)) return target.isSandboxCreate
  return true
}

export class FaultRules implements FaultController {
  private rules: LiveRule[] = []
  private log: AppliedFault[] = []

  add(...rules: FaultRule[]): void {
    const checked = rules.map(validateRule)
    for (const rule of checked) this.rules.push({ rule, pattern: new RegExp(rule.path), remaining: rule.times ?? 1 })
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

  /** Picks the first rule that matches and can apply, and uses one of its applications. */
  take(target: FaultTarget, requestIndex: number): FaultAction | undefined {
    for (let i = 0; i < this.rules.length; i++) {
      const live = this.rules[i] as LiveRule
      const { rule } = live
      if (rule.server && rule.server !== target.server) continue
      if (rule.method && rule.method.toUpperCase() !== target.method.toUpperCase()) continue
      if (!live.pattern.test(target.path)) continue
      if (!applies(rule.action.kind, target)) continue
      live.remaining -= 1
      if (live.remaining <= 0) this.rules.splice(i, 1)
      this.log.push({ requestIndex, method: target.method, path: target.path, action: rule.action })
      return rule.action
    }
    return undefined
  }
}
