// The fault-rule queue both emulators share: rules are consumed in the order added, each application is
// recorded, and a rule is matched by method and path pattern. What the rules say (the actions), which extra
// checks a rule must pass and which requests an action can apply to differ per emulator, so the emulator
// passes them in; the queue itself, the checks every rule needs and the record are the same for both.

/** The fields every emulator's fault rule has; an emulator adds its own (e.g. which server). */
export interface BaseFaultRule<Action extends { kind: string }> {
  /** HTTP method to match (case-insensitive); any method when absent. */
  method?: string
  /** Regular expression source matched against the request pathname. */
  path: string
  /** How many matching requests the rule applies to (default 1). */
  times?: number
  action: Action
}

export interface AppliedFault<Action> {
  /** Index into `emulator.requests` of the request that got the fault. */
  requestIndex: number
  method: string
  path: string
  action: Action
}

export interface FaultController<Rule, Action> {
  /** Appends rules; they are consumed in the order added. Throws on a malformed rule. */
  add(...rules: Rule[]): void
  /** Removes all pending rules and the applied log. */
  clear(): void
  /** Rules (with their remaining `times`) not yet used up. */
  pending(): Rule[]
  /** Which request got which fault, in order. */
  applied(): AppliedFault<Action>[]
}

/**
 * The first checks every rule needs, whichever emulator it is for: an object with a valid regular
 * expression `path` and a string `method` if any. Returns the rule for the next checks; throws a readable
 * error. (Split from checkRuleTimesAndKind so an emulator's own field checks keep their place between.)
 */
export function checkRuleBasics<Rule extends BaseFaultRule<{ kind: string }>>(value: unknown): Partial<Rule> {
  if (value === null || typeof value !== 'object') throw new Error('fault rule must be an object')
  const rule = value as Partial<Rule>
  if (typeof rule.path !== 'string') throw new Error('fault rule needs "path" (a regular expression source)')
  try {
    new RegExp(rule.path)
  } catch {
    throw new Error(`fault rule path is not a valid regular expression: ${rule.path}`)
  }
  if (rule.method !== undefined && typeof rule.method !== 'string') throw new Error('fault rule "method" must be a string')
  return rule
}

/** A positive integer `times` if any, and an action whose kind is one of `kinds`; returns the action. */
export function checkRuleTimesAndKind<Rule extends BaseFaultRule<{ kind: string }>>(rule: Partial<Rule>, kinds: ReadonlySet<string>): Rule['action'] {
  if (rule.times !== undefined && (!Number.isInteger(rule.times) || rule.times < 1)) {
    throw new Error('fault rule "times" must be a positive integer')
  }
  const action = rule.action as Rule['action'] | undefined
  if (!action || typeof action !== 'object' || !kinds.has(action.kind)) {
    throw new Error(`fault rule "action.kind" must be one of ${[...kinds].join(', ')}`)
  }
  return action
}

interface LiveRule<Rule> {
  rule: Rule
  pattern: RegExp
  remaining: number
}

export class FaultQueue<Rule extends BaseFaultRule<Action>, Action extends { kind: string }> implements FaultController<Rule, Action> {
  private rules: LiveRule<Rule>[] = []
  private log: AppliedFault<Action>[] = []
  private readonly validate: (value: unknown) => Rule

  /** `validate` checks one rule (it may have arrived as JSON from another process) and throws if it is malformed. */
  constructor(validate: (value: unknown) => Rule) {
    this.validate = validate
  }

  add(...rules: Rule[]): void {
    // All rules are checked before any is added: a malformed one leaves the queue as it was.
    const checked = rules.map((rule) => this.validate(rule))
    for (const rule of checked) this.rules.push({ rule, pattern: new RegExp(rule.path), remaining: rule.times ?? 1 })
  }

  clear(): void {
    this.rules = []
    this.log = []
  }

  pending(): Rule[] {
    return this.rules.map((live) => ({ ...live.rule, times: live.remaining }))
  }

  applied(): AppliedFault<Action>[] {
    return [...this.log]
  }

  /**
   * Picks the first rule whose method and path match and that `canApply` accepts, and uses one of its
   * applications. A rule `canApply` rejects is skipped and stays pending.
   */
  protected takeMatching(method: string, path: string, requestIndex: number, canApply: (rule: Rule) => boolean): Action | undefined {
    for (let i = 0; i < this.rules.length; i++) {
      const live = this.rules[i] as LiveRule<Rule>
      const { rule } = live
      if (rule.method && rule.method.toUpperCase() !== method.toUpperCase()) continue
      if (!live.pattern.test(path)) continue
      if (!canApply(rule)) continue
      live.remaining -= 1
      if (live.remaining <= 0) this.rules.splice(i, 1)
      this.log.push({ requestIndex, method, path, action: rule.action })
      return rule.action
    }
    return undefined
  }
}
