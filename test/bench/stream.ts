/**
 * Figures 1 and 4: how fast remote output flows through the whole action into its stdout (against a
 * raw read of the same event log in the same run), and how much memory the action needs for it.
 */
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { requireSuccess, startBounded, tail, watchMemory, type MemoryPeak } from './bounded-action.ts'
import { baseInputs, TOKEN, withEmulator } from './emulators.ts'
import { GroupClock } from './group-clock.ts'
import { readEventLog, type RawRead } from './raw-read.ts'
import { describeError, emit, emitError, MB, progress, round } from './report.ts'

/** A 64-character line: printable ASCII, so remote bytes and stdout characters are the same count. */
const LINE = 'streaming benchmark line 0123456789 abcdefghijklmnopqrstuvwxyz.'

interface StreamRun {
  operationId: string
  /** Remote stdout bytes as the action tallied them (its debug line), else the characters we saw. */
  payloadBytes: number
  bodyChars: number
  actionMs: number
  memory: MemoryPeak
  tallyLine: string | undefined
}

async function streamThroughAction(emulator: ContreeEmulator, bytes: number): Promise<StreamRun> {
  const run = startBounded(
    {
      inputs: baseInputs(emulator, { run: `yes '${LINE}' | head -c ${bytes}`, disposable: 'true', timeout: '300' }),
      env: { RUNNER_DEBUG: '1' },
    },
    240_000,
  )
  const clock = new GroupClock()
  run.action.child.stdout?.on('data', (chunk: string) => clock.push(chunk))
  const memory = watchMemory(run.action.child.pid ?? -1)
  let peak: MemoryPeak
  let result
  try {
    result = await run.done
  } finally {
    peak = memory.stop()
  }
  requireSuccess(result, `streaming ${bytes / MB} MB`)
  if (!clock.complete || clock.firstByteAt === undefined || clock.endGroupAt === undefined) {
    throw new Error(`could not find the Run group's output in the action's stdout (${clock.describe()}); stdout tail: ${tail(result.stdout, 400)}`)
  }
  const operationId = result.outputs['operation-uuid'] ?? emulator.operations().at(-1)?.uuid
  if (operationId === undefined || operationId === '') throw new Error('no operation-uuid output and no operation in the emulator')
  const tallyLine = /Remote output of operation [^\n]*/.exec(result.stdout.slice(-65_536))?.[0]
  const tallied = tallyLine === undefined ? undefined : /stdout: (\d+) bytes/.exec(tallyLine)?.[1]
  return {
    operationId,
    payloadBytes: tallied === undefined ? clock.bodyChars : Number(tallied),
    bodyChars: clock.bodyChars,
    actionMs: clock.endGroupAt - clock.firstByteAt,
    memory: peak,
    tallyLine,
  }
}

interface RoundResult {
  run: StreamRun
  raw: RawRead
  actionMbps: number
  rawMbps: number
  ratio: number
}

/** One action run and, right after it, a raw read of the same operation's event log. */
async function throughputRound(bytes: number): Promise<RoundResult> {
  // A fresh emulator per round: the in-process emulator retains each operation's whole output.
  return withEmulator(async (emulator) => {
    const run = await streamThroughAction(emulator, bytes)
    const raw = await readEventLog(emulator.url, TOKEN, run.operationId, 120_000)
    // Both rates over the same payload (the remote output), so the ratio is raw time ÷ action time.
    const actionMbps = run.payloadBytes / MB / (run.actionMs / 1000)
    const rawMbps = run.payloadBytes / MB / (raw.ms / 1000)
    progress(`stream: action ${Math.round(run.actionMs)} ms, raw read ${Math.round(raw.ms)} ms; ${run.tallyLine?.slice(0, 110) ?? 'no debug tally line'}`)
    return { run, raw, actionMbps, rawMbps, ratio: actionMbps / rawMbps }
  })
}

/**
 * Three rounds, each pairing an action run with a raw read in the same emulator, and the median
 * round is reported: on a small shared machine a single pair swings by ±30 %.
 */
export async function streamThroughput(bytes = 100 * MB, rounds = 3): Promise<void> {
  const figure = 'stream.throughput_ratio'
  const goal = '>= 0.5 (action MB/s ÷ raw event-log read MB/s, same operation)'
  try {
    const results: RoundResult[] = []
    const errors: string[] = []
    const started = Date.now()
    for (let i = 0; i < rounds && Date.now() - started < 120_000; i++) {
      progress(`stream: round ${i + 1}/${rounds}, the action streams ${bytes / MB} MB`)
      try {
        results.push(await throughputRound(bytes))
      } catch (error) {
        // A failed round is a finding in itself; the others still give a figure.
        errors.push(`round ${i + 1}: ${describeError(error)}`)
        progress(`stream: round ${i + 1} failed: ${describeError(error)}`)
      }
    }
    const middle = [...results].sort((a, b) => a.ratio - b.ratio)[Math.floor((results.length - 1) / 2)]
    if (middle === undefined) throw new Error(errors.join('; ') || 'no round completed')
    const { run, raw } = middle
    const common = {
      payload_bytes: run.payloadBytes,
      rounds: results.length,
      round_reported: 'median ratio',
      ...(errors.length > 0 ? { failed_rounds: errors } : {}),
    }
    emit({
      figure: 'stream.action_throughput',
      value: round(middle.actionMbps, 1),
      unit: 'MB/s',
      goal: 'informational (see stream.throughput_ratio)',
      ms: Math.round(run.actionMs),
      all_rounds_mbps: results.map((r) => round(r.actionMbps, 1)),
      stdout_body_chars: run.bodyChars,
      peak_rss_mb: round(Math.max(run.memory.maxRssBytes, run.memory.hwmBytes) / MB, 1),
      timed: 'first remote byte in stdout → ::endgroup::',
      ...common,
    })
    emit({
      figure: 'stream.raw_read_throughput',
      value: round(middle.rawMbps, 1),
      unit: 'MB/s',
      goal: 'informational (yardstick: GET …/events, gunzip, count)',
      ms: Math.round(raw.ms),
      all_rounds_mbps: results.map((r) => round(r.rawMbps, 1)),
      sse_bytes: raw.sseBytes,
      wire_bytes: raw.wireBytes,
      sse_mbps: round(raw.sseBytes / MB / (raw.ms / 1000), 1),
      ...common,
    })
    emit({
      figure,
      value: round(middle.ratio),
      unit: 'ratio',
      goal,
      all_rounds: results.map((r) => round(r.ratio)),
      ...(errors.length > 0 ? { failed_rounds: errors } : {}),
      action_mbps: round(middle.actionMbps, 1),
      raw_mbps: round(middle.rawMbps, 1),
    })
  } catch (error) {
    emitError(figure, 'ratio', goal, error)
  }
}

export async function streamMemory(sizes: readonly number[] = [50 * MB, 100 * MB, 200 * MB]): Promise<void> {
  const goal = '<= 150 MB and flat as output grows'
  const peaks: { bytes: number; peakMb: number }[] = []
  for (const bytes of sizes) {
    const figure = `rss.peak_${bytes / MB}MB`
    try {
      // A fresh emulator per size: the in-process emulator retains each operation's whole output.
      const run = await withEmulator((emulator) => {
        progress(`rss: action streams ${bytes / MB} MB`)
        return streamThroughAction(emulator, bytes)
      })
      const peakBytes = Math.max(run.memory.maxRssBytes, run.memory.hwmBytes)
      peaks.push({ bytes, peakMb: peakBytes / MB })
      emit({
        figure,
        value: round(peakBytes / MB, 1),
        unit: 'MB',
        goal,
        max_vmrss_mb: round(run.memory.maxRssBytes / MB, 1),
        vmhwm_mb: round(run.memory.hwmBytes / MB, 1),
        samples: run.memory.samples,
        payload_bytes: run.payloadBytes,
        stream_ms: Math.round(run.actionMs),
      })
    } catch (error) {
      emitError(figure, 'MB', goal, error)
    }
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
