/**
 * Judges one chaos run exactly: what the action must have done given the faults that actually
 * struck (from the proxy's log) and whether a signal arrived. Returns every problem found, each a
 * sentence a reader can act on; an empty list is a pass.
 */
import { linesInsideStopCommands, printedText } from '../helpers/printed-text.ts'
import { executedCommands } from '../helpers/run-action.ts'
import type { Exchange } from './chaos-proxy.ts'
import type { RunRecord } from './run-once.ts'

const OWN_COMMANDS = /^::(group|endgroup|stop-commands|add-mask|debug|warning|error|notice)::/
/** The note the action prints when it had to take the end of the output from the operation record. */
const RECORD_FILL_NOTE = /\nThe end of the output could not be read from the event stream; the last \d+ byte\(s\) were taken from the operation record \(stdout and stderr may be out of order there\)\.\n$/
const NOT_PROCESSED = new Set([425, 429])

export interface Verdict {
  problems: string[]
  /** How the run ended, for the campaign's tally: success, expected failure, cancelled. */
  kind: 'success' | 'expected-failure' | 'cancelled'
  /** The action took the end of the output from the operation record (legitimate after repeated drain failures). */
  filledFromRecord: boolean
  /** The first difference of the printed text, when there is one. */
  difference?: string
}

/** The request whose fault must fail the run: a create the service may have processed is never replayed. */
export function fatalExchange(exchanges: readonly Exchange[]): Exchange | undefined {
  return exchanges.find((exchange) => {
    const action = exchange.fault?.action
    if (action === undefined || (exchange.target !== 'spawn' && exchange.target !== 'file-upload')) return false
    if (action.kind === 'status') return !NOT_PROCESSED.has(action.status)
    return action.kind === 'drop' || action.kind === 'cut-response'
  })
}

export function judge(record: RunRecord): Verdict {
  const problems: string[] = []
  const { result, exchanges, plan } = record
  const payload = plan.payload.text.toString('utf8')
  const spawns = exchanges.filter((exchange) => exchange.target === 'spawn')
  const refusedSpawns = spawns.filter((exchange) => !exchange.forwarded && exchange.answeredStatus !== undefined && NOT_PROCESSED.has(exchange.answeredStatus))
  const forwardedSpawns = spawns.filter((exchange) => exchange.forwarded)
  const deletes = exchanges.filter((exchange) => exchange.target === 'delete')
  const deletesOf = (id: string) => deletes.filter((exchange) => exchange.path.endsWith(`/${id}`))
  const known = knownOperations(record.savedWork)
  const fatal = fatalExchange(exchanges)
  // A signal counts once the action acknowledged it, or died of it before its handler existed.
  const signalled = record.signal !== undefined && (record.signal.acknowledgedAt !== undefined || result.exitCode !== 0)

  if (record.hung) problems.push(`the action was still running after the run deadline and was killed`)
  const executed = executedCommands(result.stdout)
  for (const command of executed) {
    if (!OWN_COMMANDS.test(command)) problems.push(`a workflow command the action did not mean to run: ${JSON.stringify(command.slice(0, 120))}`)
  }
  for (const line of swallowedCommands(result.stdout)) {
    problems.push(`the action printed a workflow command inside a stop-commands window, where the runner ignores it: ${JSON.stringify(line.slice(0, 160))}`)
  }
  const token = findToken(record)
  if (token) problems.push(`the token was printed in ${token}`)
  if (result.stderr.trim() !== '') problems.push(`the action wrote to stderr: ${JSON.stringify(result.stderr.slice(0, 400))}`)
  if (!record.settled) {
    const running = [...record.operations].filter(([, status]) => status === undefined || !['SUCCESS', 'FAILED', 'CANCELLED'].includes(status))
    problems.push(`operations still running after the run: ${running.map(([id, status]) => `${id} ${status ?? 'unknown'}`).join(', ')}`)
  }

  const printed = printedText(result.stdout)
  let filledFromRecord = false
  let difference: string | undefined
  let kind: Verdict['kind']

  if (signalled) {
    kind = 'cancelled'
    if (result.exitCode === 0) problems.push('the job was cancelled but the action exited 0')
    const acknowledgedAt = record.signal?.acknowledgedAt
    if (acknowledgedAt !== undefined) {
      for (const post of exchanges.filter((exchange) => exchange.method === 'POST')) {
        const cause = decidedAfter(post, exchanges, acknowledgedAt)
        if (cause) problems.push(`POST ${post.path} (#${post.index}) was sent after the signal: it follows #${cause.index}, whose outcome the action could only act on after it had acknowledged the signal`)
      }
    }
    for (const [id, states] of known) {
      const count = deletesOf(id)
      const reached = count.filter((exchange) => exchange.forwarded).length
      const final = states.at(-1)
      // The saved history tells whether the action asked for a cancel (it was live at the signal) or saw the end first.
      const cancelRequested = states.includes('cancel-requested')
      // Every DELETE refused or dropped: the action must say so where it is seen, and leave it live for the post step.
      const cancelFailed = count.length > 0 && reached === 0 && count.every((exchange) => exchange.fault !== undefined)
      if (final === 'live' && !cancelFailed) problems.push(`operation ${id} was still live in the saved state at exit, and its cancel did not fail`)
      if (final === 'live' && cancelFailed && !executed.some((command) => command.startsWith(`::warning::Could not cancel run (operation ${id})`))) {
        problems.push(`the failed cancel of operation ${id} was not reported as a visible warning`)
      }
      if (cancelRequested && !cancelFailed && reached !== 1) problems.push(`operation ${id}: ${reached} DELETE(s) reached the service, expected exactly 1`)
      if (!cancelRequested && count.length !== 0) problems.push(`operation ${id} had finished before the signal, yet ${count.length} DELETE(s) were sent`)
      const injected = count.filter((exchange) => exchange.fault !== undefined).length
      if (count.length > reached + injected) problems.push(`operation ${id}: DELETE sent ${count.length} times for ${injected} injected failure(s)`)
    }
    // The window holds remote text only: the signal's own lines wait for it to close (one that landed
    // between the pieces of a cut line split that line for a reader: seeds 234, 9004).
    if (printed !== undefined && !isPrefixOfPayload(printed, payload)) {
      difference = firstDifference(payload, printed)
      problems.push(`the printed text is not a prefix of the payload: ${difference}`)
    }
  } else if (fatal !== undefined) {
    kind = 'expected-failure'
    if (result.exitCode === 0) problems.push(`the action exited 0 although ${fatal.method} ${fatal.path} failed for good (exchange #${fatal.index})`)
    const later = exchanges.filter((exchange) => exchange.index > fatal.index && exchange.target === fatal.target && exchange.bodySha256 === fatal.bodySha256)
    if (later.length > 0) problems.push(`${fatal.method} ${fatal.path} was replayed after a failure that may have been processed (exchanges ${later.map((e) => `#${e.index}`).join(', ')})`)
    if (fatal.target === 'file-upload' && spawns.length > 0) problems.push(`a spawn was sent after an upload failed for good`)
    const expectedForwarded = fatal.target === 'spawn' && fatal.forwarded ? 1 : 0
    if (forwardedSpawns.length !== expectedForwarded) problems.push(`${forwardedSpawns.length} spawn(s) reached the service, expected ${expectedForwarded}`)
    if (deletes.length > 0) problems.push(`${deletes.length} DELETE(s) sent for operations the action never knew of`)
  } else {
    kind = 'success'
    if (result.exitCode !== 0) {
      const errors = result.stdout.split('\n').filter((line) => line.startsWith('::error::'))
      problems.push(`the action exited ${result.exitCode ?? result.signal}; errors: ${errors.join(' | ').slice(0, 600) || '(none printed)'}`)
    }
    if (forwardedSpawns.length !== 1) problems.push(`${forwardedSpawns.length} spawn(s) reached the service, expected exactly 1`)
    if (spawns.length !== 1 + refusedSpawns.length) problems.push(`${spawns.length} spawn request(s) for ${refusedSpawns.length} answered 425/429, expected ${1 + refusedSpawns.length}`)
    if (deletes.length > 0) problems.push(`${deletes.length} DELETE(s) in a run that was neither cancelled nor failed`)
    const operationId = forwardedSpawns[0]?.operationId
    if (result.exitCode === 0 && operationId !== undefined) {
      if (record.operations.get(operationId) !== 'SUCCESS') problems.push(`operation ${operationId} ended ${record.operations.get(operationId) ?? 'unknown'}, expected SUCCESS`)
      if (result.outputs['operation-uuid'] !== operationId) problems.push(`output operation-uuid is ${result.outputs['operation-uuid']}, expected ${operationId}`)
      if (result.outputs['exit-code'] !== '0') problems.push(`output exit-code is ${result.outputs['exit-code']}, expected 0`)
    }
    let text = printed
    if (text !== undefined && RECORD_FILL_NOTE.test(text)) {
      filledFromRecord = true
      text = text.replace(RECORD_FILL_NOTE, '\n')
    }
    if (text === undefined) problems.push('no run group was printed')
    else if (text !== payload) {
      difference = firstDifference(payload, text)
      problems.push(`the printed text differs from the payload: ${difference}`)
    }
  }
  return { problems, kind, filledFromRecord, ...(difference !== undefined ? { difference } : {}) }
}

/**
 * The request `post` waited for whose outcome reached the action only after the action had
 * acknowledged the signal, if any: then the action decided to send `post` after the signal.
 *
 * When bytes leave the action cannot be told from when they reach the proxy (a request decided just
 * before the signal may be written just after it), so this reasons from causes instead: a spawn is
 * sent only once every request before it was answered (image lookup, file probes, uploads, refused
 * spawns); an upload once its file's probe and its refused attempts were. An answer the proxy began
 * after it saw the acknowledgement, or a refusal whose Retry-After (or the shortest ladder step)
 * reaches past it, can only have been acted on after the signal.
 */
export function decidedAfter(post: Exchange, exchanges: readonly Exchange[], acknowledgedAt: number): Exchange | undefined {
  const causes = exchanges.filter((exchange) => {
    if (exchange.index >= post.index) return false
    if (post.target === 'spawn') return ['inspect', 'file-probe', 'file-upload', 'spawn'].includes(exchange.target)
    if (post.target === 'file-upload') {
      return (exchange.target === 'file-probe' && exchange.path.endsWith(`/${post.bodySha256}`)) || (exchange.target === 'file-upload' && exchange.bodySha256 === post.bodySha256)
    }
    return false
  })
  return causes.find((cause) => cause.answeredAt !== undefined && cause.answeredAt + earliestReaction(cause) > acknowledgedAt)
}

/** The least time the action waits after an outcome before acting on it: a refused POST's retry delay. */
function earliestReaction(exchange: Exchange): number {
  const action = exchange.fault?.action
  if (exchange.method !== 'POST' || action?.kind !== 'status' || !NOT_PROCESSED.has(action.status)) return 0
  // Retry-After replaces the ladder, whose shortest step is 100 ms (src/http/retry.ts).
  return action.retryAfter === undefined ? 100 : Number(action.retryAfter) * 1000
}

/** Operation id → the states it went through, from every value of the step state the action saved (src/state.ts, LiveWork). */
function knownOperations(saved: readonly string[]): Map<string, string[]> {
  const known = new Map<string, string[]>()
  for (const value of saved) {
    try {
      for (const item of JSON.parse(value) as { kind?: string; id?: string; state: string }[]) {
        if (item.kind !== 'operation' || item.id === undefined) continue
        const states = known.get(item.id) ?? []
        if (states.at(-1) !== item.state) states.push(item.state)
        known.set(item.id, states)
      }
    } catch {
      // A broken value shows up as operations the action did not know of.
    }
  }
  return known
}

/**
 * Lines inside stop-commands windows that start with `::`. The action guards remote lines that do (a
 * zero-width space after the first colon), so these are the action's own commands, printed while a
 * window was open: the runner does not run them (an annotation or a warning is lost).
 */
export function swallowedCommands(stdout: string): string[] {
  return linesInsideStopCommands(stdout).filter((line) => line.trimStart().startsWith('::'))
}

/** Where the token shows, if anywhere. The runner's own masking command is the one place it may be written. */
function findToken(record: RunRecord): string | undefined {
  const { result, token } = record
  const places: [string, string][] = [
    ['stdout', result.stdout.replace(`::add-mask::${token}\n`, '')],
    ['stderr', result.stderr],
    ['the summary', result.summary],
    ['the outputs', JSON.stringify(result.outputs)],
    ['the state', JSON.stringify(result.state)],
  ]
  return places.find(([, text]) => text.includes(token))?.[0]
}

/**
 * A cancelled run prints a prefix of the payload. Its last line may be unfinished: the action ends it
 * with a newline, and a character cut in half at the end becomes U+FFFD.
 */
export function isPrefixOfPayload(printed: string, payload: string): boolean {
  if (payload.startsWith(printed)) return true
  const unfinished = printed.replace(/\n$/, '').replace(/\uFFFD$/, '')
  return payload.startsWith(unfinished)
}

/** Where two texts first differ: offset in characters and UTF-8 bytes, with a little context on both sides. */
export function firstDifference(expected: string, got: string): string {
  let i = 0
  while (i < expected.length && i < got.length && expected.charCodeAt(i) === got.charCodeAt(i)) i++
  if (i === expected.length && i === got.length) return 'none'
  const byte = Buffer.byteLength(expected.slice(0, i))
  // Whole code points only, so the context never shows half a surrogate pair.
  const context = (text: string): string => JSON.stringify(Array.from(text.slice(0, i)).slice(-16).join('')) + ' | ' + JSON.stringify(Array.from(text.slice(i, i + 64)).slice(0, 16).join(''))
  return `at character ${i} (byte ${byte}) of ${expected.length} expected (${got.length} printed): expected ${context(expected)}, got ${context(got)}`
}
