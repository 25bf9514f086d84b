/**
 * The plan of one chaos run, drawn from its seed: the payload, the faults the proxy injects (which
 * request, what happens to it, at which byte) and, for some runs, when the job is cancelled.
 */
import { makePayload, type Payload } from './payload.ts'
import { Prng } from './prng.ts'

/** The requests a run makes, as the proxy tells them apart. */
export type Target = 'inspect' | 'file-probe' | 'file-upload' | 'spawn' | 'events' | 'operation' | 'delete'

/** What happens to a whole request (any target). */
export type RequestAction =
  /** Answered by the proxy with this status; the service never sees the request. */
  | { kind: 'status'; status: number; retryAfter?: '0' | '1' }
  /** The connection is closed as soon as the request has arrived; the service never sees it. */
  | { kind: 'drop' }
  /** Forwarded at once, but the answer is held back this long (a slow service). */
  | { kind: 'delay'; ms: number }
  /** Forwarded; the answer is cut after this many of its bytes (status line and headers included). */
  | { kind: 'cut-response'; atByte: number }

/** What happens inside an event stream, at the first frame boundary where the rule's payload offset is reached. */
export type StreamAction =
  /** The connection dies this many wire bytes later: inside a chunk-size line, a chunk, a gzip block. */
  | { kind: 'cut'; afterBytes: number }
  /** The connection dies inside a multi-byte character (of the SSE text, or of the remote output at an event's end). */
  | { kind: 'cut-in-char' }
  /** The service's in-band error frame, then a clean end. */
  | { kind: 'sse-error' }
  /** A clean end of the stream without a completion frame. */
  | { kind: 'clean-end' }
  /** A chunk-size line that is not hex, then the connection closes. */
  | { kind: 'broken-chunking' }
  /** This many more bytes of SSE text (possibly half a frame), then the chunked body ends without the gzip trailer. */
  | { kind: 'truncated-gzip'; afterTextBytes: number }
  /** Bytes that are not deflate data (an invalid block type) at the next flush boundary, then a clean chunked end. */
  | { kind: 'corrupt-gzip' }
  /** The stream's gzip header names an unknown compression method (applies at the start of a response). */
  | { kind: 'corrupt-gzip-header' }
  /** This many more wire bytes, then silence on an open connection (no keepalives either). */
  | { kind: 'stall'; afterBytes: number }

export type FaultAction = RequestAction | StreamAction

export interface FaultRule {
  target: Target
  /**
   * Event streams only: the rule waits until this many bytes of remote output have been sent to
   * the action (over all connections), then applies to the stream in flight or the next request.
   */
  atPayloadByte?: number
  action: FaultAction
}

export type SignalPlan =
  /** SIGINT this long after the action started. */
  | { kind: 'after-ms'; ms: number }
  /** SIGINT once the action has printed this many characters. */
  | { kind: 'after-printed'; chars: number }
  /** SIGINT the moment the spawn request reaches the proxy (its answer may be held back by a delay rule). */
  | { kind: 'on-spawn' }

export interface RunPlan {
  seed: number
  payload: Payload
  faults: FaultRule[]
  signal?: SignalPlan
}

const STREAM_KINDS = new Set<FaultAction['kind']>([
  'cut',
  'cut-in-char',
  'sse-error',
  'clean-end',
  'broken-chunking',
  'truncated-gzip',
  'corrupt-gzip',
  'corrupt-gzip-header',
  'stall',
])

export function isStreamAction(action: FaultAction): action is StreamAction {
  return STREAM_KINDS.has(action.kind)
}

/** Statuses after which a client may try again; the service may or may not have done the work. */
const TRANSIENT_STATUSES = [500, 502, 503, 504, 408, 410, 425, 429]
/** The service's promise that nothing was processed: even a create may be replayed. */
const NOT_PROCESSED_STATUSES = [425, 429]

/** How many faults of each target a run may have: a retried request gets ten attempts in all. */
const LIMITS: Record<Target, number> = { inspect: 3, 'file-probe': 3, 'file-upload': 2, spawn: 2, events: 6, operation: 3, delete: 3 }
/** Attempts of a cancel (src/providers/contree/api.ts): this many DELETE faults make it fail for good. */
const CANCEL_ATTEMPTS = 3

function retryAfter(rng: Prng, allowSlow = true): { retryAfter?: '0' | '1' } {
  const roll = rng.next()
  if (roll < 0.4) return { retryAfter: '0' }
  if (allowSlow && roll < 0.55) return { retryAfter: '1' }
  return {}
}

function transientStatus(rng: Prng, statuses: readonly number[] = TRANSIENT_STATUSES, allowSlow = true): RequestAction {
  return { kind: 'status', status: rng.pick(statuses), ...retryAfter(rng, allowSlow) }
}

/** A fault for an idempotent read that the action must ride out (it retries). */
function readFault(rng: Prng): RequestAction {
  return rng.weighted<() => RequestAction>([
    [55, () => transientStatus(rng)],
    [20, () => ({ kind: 'drop' })],
    [15, () => ({ kind: 'cut-response', atByte: rng.logUniform(1, 600) })],
    [10, () => ({ kind: 'delay', ms: rng.int(50, 1500) })],
  ])()
}

function spawnFault(rng: Prng): RequestAction {
  return rng.weighted<() => RequestAction>([
    [45, () => transientStatus(rng, NOT_PROCESSED_STATUSES)],
    [25, () => ({ kind: 'delay', ms: rng.int(50, 1500) })],
    // These must fail the run: a create that may have been processed is never replayed.
    [10, () => transientStatus(rng, [500, 502, 503])],
    [10, () => ({ kind: 'drop' })],
    [10, () => ({ kind: 'cut-response', atByte: rng.logUniform(1, 400) })],
  ])()
}

function uploadFault(rng: Prng): RequestAction {
  return rng.weighted<() => RequestAction>([
    [70, () => transientStatus(rng, NOT_PROCESSED_STATUSES)],
    // Must fail the run: an upload answered 5xx may have been stored, and POST is not replayed.
    [15, () => transientStatus(rng, [500, 503])],
    [15, () => ({ kind: 'drop' })],
  ])()
}

function deleteFault(rng: Prng): RequestAction {
  // Retry-After of 0 or none only: the cancel has about 3 s in all.
  return rng.weighted<() => RequestAction>([
    [70, () => transientStatus(rng, [500, 503, 429], false)],
    [30, () => ({ kind: 'drop' })],
  ])()
}

function eventsFault(rng: Prng): FaultAction {
  return rng.weighted<() => FaultAction>([
    [18, () => ({ kind: 'cut', afterBytes: rng.chance(0.8) ? rng.int(0, 4096) : rng.logUniform(4096, 200_000) })],
    [10, () => ({ kind: 'cut-in-char' })],
    [10, () => ({ kind: 'sse-error' })],
    [6, () => ({ kind: 'clean-end' })],
    [5, () => ({ kind: 'broken-chunking' })],
    [10, () => ({ kind: 'truncated-gzip', afterTextBytes: rng.chance(0.3) ? 0 : rng.logUniform(1, 20_000) })],
    [8, () => ({ kind: 'corrupt-gzip' })],
    [4, () => ({ kind: 'corrupt-gzip-header' })],
    [10, () => ({ kind: 'stall', afterBytes: rng.chance(0.8) ? rng.int(0, 4096) : rng.logUniform(4096, 200_000) })],
    [14, () => transientStatus(rng, [500, 502, 503, 504, 410, 425, 429])],
    [5, () => ({ kind: 'drop' })],
  ])()
}

function drawFaults(rng: Prng, payload: Payload, withSignal: boolean): FaultRule[] {
  const count = rng.weighted([
    [1, 0],
    [2, 1],
    [3, 2],
    [3, 3],
    [2, 4],
    [2, 5],
    [1, 7],
  ] as const)
  const used: Record<Target, number> = { inspect: 0, 'file-probe': 0, 'file-upload': 0, spawn: 0, events: 0, operation: 0, delete: 0 }
  const rules: FaultRule[] = []
  for (let i = 0; i < count; i++) {
    const target = rng.weighted<Target>([
      [55, 'events'],
      [10, 'operation'],
      [9, 'spawn'],
      [7, 'inspect'],
      [payload.files.length > 0 ? 5 : 0, 'file-probe'],
      [payload.files.length > 0 ? 5 : 0, 'file-upload'],
      [withSignal ? 9 : 0, 'delete'],
    ])
    if (used[target] >= LIMITS[target]) continue
    used[target]++
    switch (target) {
      case 'events': {
        // A third of the stream faults strike before any output, the rest anywhere in it.
        const atPayloadByte = rng.chance(0.3) ? 0 : rng.int(0, Math.max(0, payload.text.length - 1))
        rules.push({ target, atPayloadByte, action: eventsFault(rng) })
        break
      }
      case 'spawn':
        rules.push({ target, action: spawnFault(rng) })
        break
      case 'file-upload':
        rules.push({ target, action: uploadFault(rng) })
        break
      case 'delete':
        // Mostly one refusal the cancel rides out; sometimes every attempt fails, and the action
        // must say so visibly and leave the operation to the post step.
        if (used.delete === 1 && rng.chance(0.25)) {
          for (let attempt = 0; attempt < CANCEL_ATTEMPTS; attempt++) rules.push({ target, action: deleteFault(rng) })
          used.delete = CANCEL_ATTEMPTS
        } else rules.push({ target, action: deleteFault(rng) })
        break
      default:
        rules.push({ target, action: readFault(rng) })
    }
  }
  // Stream rules in the order the output reaches them, so the plan reads as a story.
  const streamRules = rules.filter((rule) => rule.target === 'events').sort((a, b) => (a.atPayloadByte ?? 0) - (b.atPayloadByte ?? 0))
  return [...rules.filter((rule) => rule.target !== 'events'), ...streamRules]
}

function drawSignal(rng: Prng, payload: Payload): SignalPlan {
  return rng.weighted<() => SignalPlan>([
    [45, () => ({ kind: 'after-ms', ms: rng.int(0, 2500) })],
    [40, () => ({ kind: 'after-printed', chars: rng.int(1, payload.text.length) })],
    [15, () => ({ kind: 'on-spawn' })],
  ])()
}

export function makePlan(seed: number): RunPlan {
  const payload = makePayload(Prng.stream(seed, 'payload'))
  const signalRng = Prng.stream(seed, 'signal')
  const signal = signalRng.chance(0.25) ? drawSignal(signalRng, payload) : undefined
  const faults = drawFaults(Prng.stream(seed, 'faults'), payload, signal !== undefined)
  return { seed, payload, faults, ...(signal ? { signal } : {}) }
}

export function describeAction(action: FaultAction): string {
  const { kind, ...rest } = action
  const details = Object.entries(rest).map(([name, value]) => `${name}=${String(value)}`)
  return details.length > 0 ? `${kind}(${details.join(', ')})` : kind
}

export function describeRule(rule: FaultRule): string {
  const where = rule.atPayloadByte === undefined ? '' : ` at payload byte ${rule.atPayloadByte}`
  return `${rule.target}${where}: ${describeAction(rule.action)}`
}

export function describeSignal(signal: SignalPlan | undefined): string {
  if (signal === undefined) return 'none'
  if (signal.kind === 'after-ms') return `SIGINT ${signal.ms} ms after the start`
  if (signal.kind === 'after-printed') return `SIGINT once ${signal.chars} characters were printed`
  return 'SIGINT as the spawn request arrives'
}

/** The plan as a reader of a failure report needs it. */
export function describePlan(plan: RunPlan): string {
  const lines = [
    `payload: ${plan.payload.text.length} bytes in ${plan.payload.bursts.length} burst(s)`,
    ...plan.payload.bursts.map((burst) => `  - ${burst}`),
    `faults (${plan.faults.length}):`,
    ...plan.faults.map((rule) => `  - ${describeRule(rule)}`),
    `signal: ${describeSignal(plan.signal)}`,
  ]
  return lines.join('\n')
}
