/**
 * Together figures. The action's code runs as it does in the action (the provider, its clients, its
 * log writer); servers run in processes of their own (the Together emulator's CLI, a byte-counting
 * builder stand-in, a real registry), and every yardstick is a plain read in its own process.
 *
 * together.context_upload_ratio: a 1 GB context listed, archived (tar.gz, adaptive compression) and
 *   uploaded as the multipart submit, against reading the same files once; with the client's peak RSS.
 * together.exec_stream_ratio: 100 MB of command output through the provider into stdout, against one
 *   plain read of the same exec's output stream.
 * together.warm_rebuild_ratio: an unchanged rebuild (found by digest, nothing built) ÷ the cold build.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { TogetherApi } from '../../src/providers/together/api.ts'
import { readContextTree } from '../../src/providers/together/context-tree.ts'
import { pushImage, registryAvailable, startRegistry } from '../emulator/registry.ts'
import { watchMemory, type MemoryPeak } from './bounded-action.ts'
import { benchTempDir, dirName, fileName, makeContext } from './context-fixture.ts'
import { GroupClock } from './group-clock.ts'
import { describeError, emit, emitError, MB, median, progress, round } from './report.ts'

const HERE = path.dirname(fileURLToPath(import.meta.url))

interface Child {
  child: ChildProcess
  lines: string[]
  /** Resolves with the exit code once the process ended and its output was read. */
  done: Promise<number | null>
  stdoutChunk(listener: (chunk: string) => void): void
}

function startChild(script: string, args: string[]): Child {
  const child = spawn(process.execPath, [path.join(HERE, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let partial = ''
  let stderr = ''
  const listeners: Array<(chunk: string) => void> = []
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    for (const listener of listeners) listener(chunk)
    const parts = (partial + chunk).split('\n')
    partial = parts.pop() ?? ''
    // Only short lines are kept: the exec client's stdout is the whole streamed output.
    for (const line of parts) if (line.length < 10_000 && (line.startsWith('{') || line.startsWith('RESULT ') || line.startsWith('http') || line.includes('='))) lines.push(line)
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)))
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  done.then((code) => {
    if (code !== 0 && code !== null) progress(`${script} exited ${code}: ${stderr.trim().slice(-600)}`)
  })
  return { child, lines, done, stdoutChunk: (listener) => listeners.push(listener) }
}

async function runChild(script: string, args: string[], what: string, onChunk?: (chunk: string) => void): Promise<{ lines: string[]; memory: MemoryPeak }> {
  const run = startChild(script, args)
  if (onChunk) run.stdoutChunk(onChunk)
  const memory = watchMemory(run.child.pid ?? -1)
  const code = await run.done
  const peak = memory.stop()
  if (code !== 0) throw new Error(`${what} failed (exit ${code})`)
  return { lines: run.lines, memory: peak }
}

async function firstLine(child: Child, prefix: string, timeoutMs = 30_000): Promise<string> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const line = child.lines.find((l) => l.startsWith(prefix))
    if (line !== undefined) return line
    if (Date.now() > end) throw new Error(`no "${prefix}" line within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

interface Emulator {
  apiUrl: string
  builderUrl: string
  apiKey: string
  stop(): Promise<void>
}

async function startEmulatorProcess(): Promise<Emulator> {
  const child = startChild('../emulator/together/cli.ts', [])
  const value = async (name: string) => (await firstLine(child, `${name}=`)).slice(name.length + 1)
  const emulator = { apiUrl: await value('TOGETHER_BASE_URL'), builderUrl: await value('TOGETHER_BUILDER_URL'), apiKey: await value('TOGETHER_API_KEY') }
  return {
    ...emulator,
    stop: async () => {
      child.child.kill('SIGTERM')
      await child.done
    },
  }
}

function parse<T>(lines: string[], prefix = '{'): T {
  const line = [...lines].reverse().find((l) => l.startsWith(prefix))
  if (line === undefined) throw new Error('the child printed no result')
  return JSON.parse(line.slice(prefix === '{' ? 0 : prefix.length)) as T
}

/** 1 GiB of text-like files (base64 of random bytes, so no two files share content): 512 × 2 MiB. */
function makeLargeContext(root: string): { files: number; bytes: number } {
  mkdirSync(root)
  writeFileSync(path.join(root, 'Dockerfile'), 'FROM busybox\nCOPY . /ctx\n')
  const fileBytes = 2 * 1024 * 1024
  const files = 512
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, `d${String(i % 16).padStart(2, '0')}`)
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, `f${String(i).padStart(3, '0')}.txt`), randomBytes((fileBytes / 4) * 3).toString('base64'))
  }
  return { files, bytes: files * fileBytes }
}

export async function contextUpload(rounds = 3): Promise<void> {
  const figure = 'together.context_upload_ratio'
  const goal = '>= 0.8 (read + plain upload of the same files ÷ tar.gz + multipart upload; each in its own process)'
  const rssFigure = 'together.context_upload_peak_rss'
  const rssGoal = '<= 150 MB for a 1 GB context'
  const dir = benchTempDir('together-upload-')
  const context = path.join(dir, 'ctx')
  let sink: Child | undefined
  try {
    progress('together: writing a 1 GB context')
    const fixture = makeLargeContext(context)
    const list = await runChild('together-upload-client.ts', ['--list', context], 'listing the context')
    const listing = parse<{ ms: number; files: number }>(list.lines)
    const tree = await readContextTree(context, path.join(context, 'Dockerfile'))
    const treeFile = path.join(dir, 'tree.json')
    writeFileSync(treeFile, JSON.stringify(tree))
    const files = path.join(dir, 'files.txt')
    writeFileSync(files, `${tree.files.map((f) => f.absPath).join('\n')}\n`)
    sink = startChild('together-upload-sink.ts', [])
    const url = await firstLine(sink, 'http')
    // Warm the page cache, so every reader reads from memory.
    await runChild('together-raw-files.ts', [files], 'warm-up read')
    const results: Array<{ ratio: number; uploadMs: number; rawMs: number; readMs: number; wireBytes: number; tarBytes: number; memory: MemoryPeak }> = []
    for (let i = 0; i < rounds; i++) {
      progress(`together: upload round ${i + 1}/${rounds}`)
      const upload = await runChild('together-upload-client.ts', [url, treeFile], 'the upload client')
      const raw = await runChild('together-raw-files.ts', [files, url], 'the raw read and upload')
      const read = await runChild('together-raw-files.ts', [files], 'the raw read')
      const u = parse<{ ms: number; wireBytes: number; tarBytes: number }>(upload.lines)
      const r = parse<{ ms: number }>(raw.lines)
      const rd = parse<{ ms: number }>(read.lines)
      results.push({ ratio: r.ms / u.ms, uploadMs: u.ms, rawMs: r.ms, readMs: rd.ms, wireBytes: u.wireBytes, tarBytes: u.tarBytes, memory: upload.memory })
      progress(`together: tar.gz upload ${Math.round(u.ms)} ms (wire ${round(u.wireBytes / MB, 1)} MB of ${round(u.tarBytes / MB, 1)} MB tar), plain upload ${Math.round(r.ms)} ms, read only ${Math.round(rd.ms)} ms`)
    }
    const middle = [...results].sort((a, b) => a.ratio - b.ratio)[Math.floor((results.length - 1) / 2)]
    if (middle === undefined) throw new Error('no round completed')
    const mbps = (ms: number) => round(fixture.bytes / MB / (ms / 1000), 1)
    emit({
      figure,
      value: round(middle.ratio),
      unit: 'ratio',
      goal,
      all_rounds: results.map((r) => round(r.ratio)),
      upload_mbps: mbps(middle.uploadMs),
      plain_upload_mbps: mbps(middle.rawMs),
      read_only_mbps: mbps(middle.readMs),
      read_only_ratio: round(middle.readMs / middle.uploadMs),
      context_bytes: fixture.bytes,
      files: fixture.files,
      wire_bytes: middle.wireBytes,
      tar_bytes: middle.tarBytes,
      timed: 'submit start → builder answered; the context was listed and hashed before (list_and_hash_ms)',
      list_and_hash_ms: Math.round(listing.ms),
    })
    const peak = Math.max(...results.map((r) => Math.max(r.memory.maxRssBytes, r.memory.hwmBytes)))
    emit({
      figure: rssFigure,
      value: round(peak / MB, 1),
      unit: 'MB',
      goal: rssGoal,
      context_bytes: fixture.bytes,
      covers: 'the upload client process: tar.gz + multipart upload of the listed context',
      list_and_hash_peak_rss_mb: round(Math.max(list.memory.maxRssBytes, list.memory.hwmBytes) / MB, 1),
    })
  } catch (error) {
    emitError(figure, 'ratio', goal, error)
    emitError(rssFigure, 'MB', rssGoal, error)
  } finally {
    sink?.child.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function execStream(bytes = 100 * MB, rounds = 3): Promise<void> {
  const figure = 'together.exec_stream_ratio'
  const goal = '>= 0.5 (action MB/s ÷ raw exec-output read MB/s, same exec)'
  let emulator: Emulator | undefined
  try {
    emulator = await startEmulatorProcess()
    const api = new TogetherApi({ baseUrl: emulator.apiUrl, token: emulator.apiKey, userAgent: 'bench' })
    const snapshot = await api.createSnapshot({ image: 'busybox:latest' })
    const results: Array<{ ratio: number; actionMbps: number; rawMbps: number; chars: number; memory: MemoryPeak }> = []
    for (let i = 0; i < rounds; i++) {
      progress(`together: exec stream round ${i + 1}/${rounds}, ${bytes / MB} MB`)
      const clock = new GroupClock()
      const run = await runChild('together-exec-client.ts', [emulator.apiUrl, emulator.builderUrl, emulator.apiKey, snapshot.id, String(bytes)], 'the exec client', (chunk) => clock.push(chunk))
      const result = parse<{ 'sandbox-id': string; 'exec-id': string }>(run.lines, 'RESULT ')
      if (!clock.complete || clock.firstByteAt === undefined || clock.endGroupAt === undefined) throw new Error(`the run group was not found in the client's stdout (${clock.describe()})`)
      const sandbox = await api.getSandbox(result['sandbox-id'])
      if (!sandbox?.agent.url || !sandbox.agent.token) throw new Error('the kept sandbox has no agent')
      const raw = await runChild('together-raw-stream.ts', [`${sandbox.agent.url}/api/v1/stream/execs/${result['exec-id']}/io`, sandbox.agent.token], 'the raw read')
      const r = parse<{ ms: number; sseBytes: number }>(raw.lines)
      await api.terminateSandbox(sandbox.id, { timeoutMs: 10_000 })
      const actionMbps = bytes / MB / ((clock.endGroupAt - clock.firstByteAt) / 1000)
      const rawMbps = bytes / MB / (r.ms / 1000)
      results.push({ ratio: actionMbps / rawMbps, actionMbps, rawMbps, chars: clock.bodyChars, memory: run.memory })
      progress(`together: action ${round(actionMbps, 1)} MB/s, raw ${round(rawMbps, 1)} MB/s`)
    }
    const middle = [...results].sort((a, b) => a.ratio - b.ratio)[Math.floor((results.length - 1) / 2)]
    if (middle === undefined) throw new Error('no round completed')
    emit({
      figure,
      value: round(middle.ratio),
      unit: 'ratio',
      goal,
      all_rounds: results.map((r) => round(r.ratio)),
      action_mbps: round(middle.actionMbps, 1),
      raw_mbps: round(middle.rawMbps, 1),
      stdout_body_chars: middle.chars,
      peak_rss_mb: round(Math.max(middle.memory.maxRssBytes, middle.memory.hwmBytes) / MB, 1),
      timed: 'first remote byte in stdout → ::endgroup::',
    })
  } catch (error) {
    emitError(figure, 'ratio', goal, error)
  } finally {
    await emulator?.stop()
  }
}

export async function warmRebuild(): Promise<void> {
  const figure = 'together.warm_rebuild_ratio'
  const goal = '≪ 1 (unchanged rebuild ÷ cold build; found by digest, nothing built)'
  if (!registryAvailable()) {
    emitError(figure, 'ratio', goal, new Error('docker-registry is not installed (a loopback registry serves the base image)'))
    return
  }
  const registry = await startRegistry()
  let emulator: Emulator | undefined
  const dir = benchTempDir('together-rebuild-')
  try {
    emulator = await startEmulatorProcess()
    const pushed = await pushImage(registry.url, 'bench/base', '1', { 'etc/motd': 'bench\n', 'tmp/': { mode: 0o1777 } })
    const context = path.join(dir, 'ctx')
    const fixture = makeContext(context)
    writeFileSync(path.join(context, 'Dockerfile'), `FROM ${pushed.reference}\nCOPY ${dirName(0)}/ /app/first/\nRUN ls /app/first | wc -l\nCOPY . /app/all/\nRUN find /app/all -type f | wc -l\n`)
    progress('together: cold build, three unchanged rebuilds, one-file change')
    const run = await runChild('together-rebuild-client.ts', [emulator.apiUrl, emulator.builderUrl, emulator.apiKey, context, path.join(context, dirName(25), fileName(50))], 'the rebuild client')
    type Timed = { ms: number; cacheHit: boolean }
    const { cold, warm, oneFile } = parse<{ cold: Timed; warm: Timed[]; oneFile: Timed }>(run.lines)
    if (cold.cacheHit || !warm.every((w) => w.cacheHit) || oneFile.cacheHit) throw new Error('the cache hits are not: miss, hit ×3, miss')
    const warmMs = median(warm.map((w) => w.ms))
    emit({
      figure,
      value: round(warmMs / cold.ms),
      unit: 'ratio',
      goal,
      cold_ms: Math.round(cold.ms),
      warm_ms: Math.round(warmMs),
      one_file_change_ms: Math.round(oneFile.ms),
      one_file_change_ratio: round(oneFile.ms / cold.ms),
      context_files: fixture.files,
      context_bytes: fixture.bytes,
    })
  } catch (error) {
    emitError(figure, 'ratio', goal, error)
  } finally {
    await emulator?.stop()
    await registry.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function togetherFigures(): Promise<void> {
  try {
    await contextUpload()
    await execStream()
    await warmRebuild()
  } catch (error) {
    progress(`together figures stopped: ${describeError(error)}`)
  }
}
