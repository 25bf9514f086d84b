/**
 * Figures 1 and 4: how fast remote output flows through the whole action into its stdout, against
 * the real limit, and how much memory the action needs for it.
 *
 * The yardstick is fair: the replay server (replay-server.ts) runs in its own process and serves a
 * pre-built, pre-compressed event stream from memory; the raw read (`node:http` + gunzip, counting
 * bytes, nothing printed) runs in another process against the same server and the same stream; the
 * action runs as the runner runs it, and what it printed is checked byte for byte (printed-check.ts).
 * Rounds alternate which of the two goes first, and the median of the per-round ratios is reported.
 */
import { spawn } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { TOKEN } from './emulators.ts'
import { expectedPrinted, generatePayload, PAYLOADS, type PayloadKind } from './payloads.ts'
import type { PrintedCheck } from './printed-check.ts'
import type { RawRead } from './raw-read.ts'
import { ReplayProcess, type LoadedOperation } from './replay-client.ts'
import { describeError, emit, emitError, MB, median, progress, round } from './report.ts'
import { runStreamingAction, type StreamedAction } from './stream-action.ts'

const RAW_READ_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'raw-read-process.ts')

export const EVENT_SIZES = [
  { label: '1KiB', bytes: 1024 },
  { label: '64KiB', bytes: 64 * 1024 },
] as const

const ACTION_DEADLINE_MS = 240_000
const GOAL = '>= 0.8 (action MB/s ÷ raw read MB/s of the same stream, each in its own process)'

interface RawReadResult extends RawRead {
  cpuMs: number
}

function rawReadInOwnProcess(url: string, operationId: string): Promise<RawReadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RAW_READ_ENTRY, url, TOKEN, operationId], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
    child.once('error', reject)
    child.once('close', (code) => {
      if (code === 0) resolve(JSON.parse(out) as RawReadResult)
      else reject(new Error(`raw read exited ${code}: ${err.trim().slice(0, 400)}`))
    })
  })
}

function actionInputs(replay: ReplayProcess): Record<string, string> {
  return { 'api-url': replay.url, token: TOKEN, image: 'tag:busybox:latest', run: 'replay', disposable: 'true', timeout: '300' }
}

interface ActionRun {
  run: StreamedAction
  ms: number
  check: PrintedCheck
  /** Events requests the action made (1 unless it had to resume), and the server's CPU share. */
  eventsRequests: number
  serverCpuShare: number | undefined
}

async function actionRun(replay: ReplayProcess, expected: Buffer): Promise<ActionRun> {
  await replay.resetStats()
  const run = await runStreamingAction(actionInputs(replay), expected, ACTION_DEADLINE_MS)
  const stats = await replay.stats()
  const stream = stats.streams[0]
  return {
    run,
    ms: (run.endGroupAt ?? 0) - (run.firstByteAt ?? 0),
    check: run.check,
    eventsRequests: stats.requests.filter((request) => request.path.endsWith('/events')).length,
    serverCpuShare: stream === undefined ? undefined : stream.cpuMs / stream.ms,
  }
}

interface Round {
  action: ActionRun
  raw: RawReadResult
  ratio: number
}

async function throughputRound(replay: ReplayProcess, loaded: LoadedOperation, expected: Buffer, rawFirst: boolean): Promise<Round> {
  let raw: RawReadResult | undefined
  if (rawFirst) raw = await rawReadInOwnProcess(replay.url, loaded.operationId)
  const action = await actionRun(replay, expected)
  raw ??= await rawReadInOwnProcess(replay.url, loaded.operationId)
  // Both rates are over the same payload, so the ratio is raw time ÷ action time.
  return { action, raw, ratio: raw.ms / action.ms }
}

function mbps(bytes: number, ms: number): number {
  return bytes / MB / (ms / 1000)
}

async function combination(replay: ReplayProcess, payload: PayloadKind, eventBytes: number, label: string, bytes: number, rounds: number): Promise<number | undefined> {
  const figure = `stream.throughput_ratio.${payload}.${label}`
  try {
    progress(`stream: ${payload}, ${label} events: building ${bytes / MB} MB of events in the replay server`)
    const loaded = await replay.load(payload, eventBytes, bytes)
    const expected = expectedPrinted(generatePayload(payload, bytes))
    // An untimed read first: building the events (in the replay server) and the expected output (in
    // this process, which also reads the action's stdout) leaves hundreds of MB of garbage whose
    // collection ran into the first timed run, the action's, which came out 10-20% slower than the
    // rounds after it while the raw read after it was not.
    await rawReadInOwnProcess(replay.url, loaded.operationId)
    const results: Round[] = []
    const errors: string[] = []
    for (let i = 0; i < rounds; i++) {
      try {
        const result = await throughputRound(replay, loaded, expected, i % 2 === 1)
        if (!result.action.check.ok) throw new Error(`printed output is wrong: ${result.action.check.difference}`)
        results.push(result)
        progress(
          `stream: ${payload}/${label} round ${i + 1}: action ${Math.round(result.action.ms)} ms, raw ${Math.round(result.raw.ms)} ms, ratio ${round(result.ratio)}, rss ${round(peakMb(result.action.run), 1)} MB`,
        )
      } catch (error) {
        errors.push(`round ${i + 1}: ${describeError(error)}`)
        progress(`stream: ${payload}/${label} round ${i + 1} failed: ${describeError(error)}`)
      }
    }
    if (errors.length > 0 || results.length === 0) throw new Error(errors.join('; '))
    const value = median(results.map((r) => r.ratio))
    const check = (results[0] as Round).action.check
    emit({
      figure,
      value: round(value),
      unit: 'ratio',
      goal: GOAL,
      action_mbps: round(median(results.map((r) => mbps(bytes, r.action.ms))), 1),
      raw_mbps: round(median(results.map((r) => mbps(bytes, r.raw.ms))), 1),
      all_rounds: results.map((r) => round(r.ratio)),
      action_ms: results.map((r) => Math.round(r.action.ms)),
      raw_ms: results.map((r) => Math.round(r.raw.ms)),
      // CPU time of each process over the same stretch: less sensitive to a busy machine than wall time.
      action_cpu_ms: results.map((r) => r.action.run.streamCpuMs ?? null),
      raw_cpu_ms: results.map((r) => Math.round(r.raw.cpuMs)),
      peak_rss_mb: round(Math.max(...results.map((r) => peakMb(r.action.run))), 1),
      printed: `byte-exact in every round (${check.printedChars} characters for ${check.expectedChars} expected, ${check.printedLines} printed lines)`,
      payload_bytes: bytes,
      stdout_events: loaded.stdoutEvents,
      sse_bytes: loaded.sseBytes,
      wire_bytes: loaded.wireBytes,
      events_requests: results.map((r) => r.action.eventsRequests),
      server_cpu_share: results.map((r) => (r.action.serverCpuShare === undefined ? null : round(r.action.serverCpuShare, 2))),
      timed: 'action: first remote byte in stdout → ::endgroup::; raw: request → end of gunzipped body',
    })
    return value
  } catch (error) {
    emitError(figure, 'ratio', GOAL, error)
    return undefined
  }
}

function peakMb(run: StreamedAction): number {
  return Math.max(run.memory.maxRssBytes, run.memory.hwmBytes) / MB
}

function machineLoad(): string {
  const [one, five] = os.loadavg()
  return `load average ${round(one ?? 0, 2)} (1 min), ${round(five ?? 0, 2)} (5 min) on ${os.availableParallelism()} cores`
}

export interface StreamOptions {
  bytes?: number
  rounds?: number
  /** Only these payloads / event size labels (default: all). */
  payloads?: readonly string[] | undefined
  eventSizes?: readonly string[] | undefined
}

/** One figure per payload × event size, then the worst of them under the old figure's name. */
export async function streamThroughput(options: StreamOptions = {}): Promise<void> {
  const bytes = options.bytes ?? 100 * MB
  const rounds = options.rounds ?? 3
  const payloads = PAYLOADS.filter((payload) => options.payloads?.includes(payload) ?? true)
  const sizes = EVENT_SIZES.filter((size) => options.eventSizes?.includes(size.label) ?? true)
  const loadBefore = machineLoad()
  let replay: ReplayProcess | undefined
  try {
    if (payloads.length === 0 || sizes.length === 0) throw new Error(`no payload or event size selected (payloads: ${PAYLOADS.join(', ')}; sizes: ${EVENT_SIZES.map((s) => s.label).join(', ')})`)
    replay = await ReplayProcess.start(TOKEN)
    const ratios: Record<string, number | null> = {}
    for (const payload of payloads) {
      for (const size of sizes) {
        ratios[`${payload}.${size.label}`] = (await combination(replay, payload, size.bytes, size.label, bytes, rounds)) ?? null
      }
    }
    const measured = Object.values(ratios).filter((value): value is number => value !== null)
    emit({
      figure: 'stream.throughput_ratio',
      value: measured.length === 0 ? null : round(Math.min(...measured)),
      unit: 'ratio (worst payload)',
      goal: GOAL,
      by_payload: ratios,
      machine: `before: ${loadBefore}; after: ${machineLoad()}`,
    })
  } catch (error) {
    emitError('stream.throughput_ratio', 'ratio', GOAL, error)
  } finally {
    await replay?.stop()
  }
}

/** Peak RSS of the action for growing outputs of the shape (short lines in 64 KiB events). */
export async function streamMemory(sizes: readonly number[] = [50 * MB, 100 * MB, 200 * MB]): Promise<void> {
  const goal = '<= 150 MB and flat as output grows'
  const peaks: { bytes: number; peakMb: number }[] = []
  let replay: ReplayProcess | undefined
  try {
    replay = await ReplayProcess.start(TOKEN)
    for (const bytes of sizes) {
      const figure = `rss.peak_${bytes / MB}MB`
      try {
        progress(`rss: building ${bytes / MB} MB of events, then the action streams them`)
        await replay.load('ascii-short', 64 * 1024, bytes)
        const run = await actionRun(replay, expectedPrinted(generatePayload('ascii-short', bytes)))
        if (!run.check.ok) throw new Error(`printed output is wrong: ${run.check.difference}`)
        const peak = peakMb(run.run)
        peaks.push({ bytes, peakMb: peak })
        emit({
          figure,
          value: round(peak, 1),
          unit: 'MB',
          goal,
          max_vmrss_mb: round(run.run.memory.maxRssBytes / MB, 1),
          vmhwm_mb: round(run.run.memory.hwmBytes / MB, 1),
          samples: run.run.memory.samples,
          payload: 'ascii-short, 64 KiB events',
          payload_bytes: bytes,
          stream_ms: Math.round(run.ms),
        })
      } catch (error) {
        emitError(figure, 'MB', goal, error)
      }
    }
  } catch (error) {
    emitError('rss.peak', 'MB', goal, error)
  } finally {
    await replay?.stop()
  }
  const first = peaks[0]
  const last = peaks.at(-1)
  if (first !== undefined && last !== undefined && last.bytes > first.bytes) {
    emit({
      figure: 'rss.growth',
      value: round(((last.peakMb - first.peakMb) / ((last.bytes - first.bytes) / MB)) * 100, 1),
      unit: 'MB RSS per 100 MB of output',
      goal: '≈ 0 (flat)',
      from: `${first.bytes / MB} MB → ${round(first.peakMb, 1)} MB`,
      to: `${last.bytes / MB} MB → ${round(last.peakMb, 1)} MB`,
    })
  }
}
