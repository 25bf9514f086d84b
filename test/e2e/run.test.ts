/**
 * End-to-end: the bundled action (dist/index.js) run the way the runner runs it, against the ConTree
 * emulator over real sockets, with faults switched on.
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator, FaultRule } from '../emulator/contree/types.ts'
import { eventually } from '../helpers/wait.ts'
import { printedText } from '../helpers/printed-text.ts'
import { executedCommands, runAction, runPost, startAction, type ActionResult } from '../helpers/run-action.ts'

const TOKEN = 'tok-e2e-Zq8v1sB7'
let emulator: ContreeEmulator

beforeAll(async () => {
  emulator = await startContreeEmulator({ token: TOKEN, keepaliveMs: 200 })
})
afterAll(async () => {
  await emulator?.close()
})
beforeEach(() => emulator.reset())

function inputs(extra: Record<string, string>): Record<string, string> {
  return { 'api-url': emulator.url, token: TOKEN, image: 'tag:busybox:latest', ...extra }
}

function requestsTo(method: string, pattern: RegExp) {
  return emulator.requests.filter((r) => r.method === method && pattern.test(r.path))
}

function expectNoToken(result: ActionResult): void {
  // The one place the token may appear is the runner's own masking command, which it never prints.
  const stdout = result.stdout.replace(`::add-mask::${TOKEN}\n`, '')
  for (const text of [stdout, result.stderr, result.summary, JSON.stringify(result.outputs), JSON.stringify(result.state)]) {
    expect(text).not.toContain(TOKEN)
  }
}

function groupBody(stdout: string, title: RegExp): string {
  const start = stdout.search(title)
  expect(start, `group ${title} in:\n${stdout}`).toBeGreaterThanOrEqual(0)
  const end = stdout.indexOf('::endgroup::', start)
  return stdout.slice(start, end)
}

describe('running a command', () => {
  it('streams the output into a group and sets every output', async () => {
    const result = await runAction({ inputs: inputs({ run: 'echo hello; echo oops >&2; echo done' }) })
    expect(result.exitCode, result.stdout + result.stderr).toBe(0)
    const body = groupBody(result.stdout, /::group::Run: /)
    // stdout lines in order; stderr is another pipe, so its place among them is the process's choice.
    const lines = body.split('\n')
    expect(lines.indexOf('hello')).toBeGreaterThan(0)
    expect(lines.indexOf('done')).toBeGreaterThan(lines.indexOf('hello'))
    expect(lines).toContain('oops')
    expect(result.outputs.status).toBe('SUCCESS')
    expect(result.outputs['exit-code']).toBe('0')
    expect(result.outputs['timed-out']).toBe('false')
    expect(result.outputs['operation-uuid']).toMatch(/^[0-9a-f-]{36}$/)
    expect(result.outputs['result-image-uuid']).toMatch(/^[0-9a-f-]{36}$/)
    expect(Number(result.outputs.duration)).toBeGreaterThanOrEqual(0)
    const summaryText = result.summary.replace(/&#(\d+);/g, (_m, code: string) => String.fromCharCode(Number(code)))
    expect(summaryText).toContain(result.outputs['operation-uuid'])
    expect(requestsTo('POST', /^\/v1\/instances$/)).toHaveLength(1)
    expectNoToken(result)
  })

  it('fails the step on a non-zero exit, with the code, and still sets the outputs', async () => {
    const result = await runAction({ inputs: inputs({ run: 'echo before; exit 3' }) })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::.*exited with code 3/)
    expect(result.stdout).toMatch(/the command failed/)
    expect(result.outputs.status).toBe('SUCCESS')
    expect(result.outputs['exit-code']).toBe('3')
    // The last lines are repeated outside the collapsed group.
    const afterGroup = result.stdout.slice(result.stdout.lastIndexOf('::endgroup::'))
    expect(afterGroup).toContain('before')
  })

  it('keeps the step green on a non-zero exit when fail-on-exit-code is false', async () => {
    const result = await runAction({ inputs: inputs({ run: 'exit 4', 'fail-on-exit-code': 'false' }) })
    expect(result.exitCode).toBe(0)
    expect(result.outputs['exit-code']).toBe('4')
  })

  it('fails on a timeout and says so', async () => {
    const result = await runAction({ inputs: inputs({ run: 'echo start; sleep 30', timeout: '1' }) })
    expect(result.exitCode).not.toBe(0)
    expect(result.outputs['timed-out']).toBe('true')
    expect(result.stdout).toMatch(/::error::.*timed out after 1 s/)
  })

  it('places uploaded workspace files in the sandbox, uploading only what the service lacks', async () => {
    const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-'))
    fs.mkdirSync(path.join(workspace, 'src'))
    fs.writeFileSync(path.join(workspace, 'src', 'a.txt'), 'alpha\n')
    fs.writeFileSync(path.join(workspace, 'b.sh'), 'echo script-ran\n', { mode: 0o755 })
    fs.mkdirSync(path.join(workspace, '.git'))
    fs.writeFileSync(path.join(workspace, '.git', 'HEAD'), 'ref: x\n')
    const run = 'cat src/a.txt && ./b.sh && test ! -e .git/HEAD && pwd'
    const first = await runAction({ workspace, inputs: inputs({ upload: '.', run }) })
    expect(first.exitCode, first.stdout).toBe(0)
    expect(first.stdout).toMatch(/alpha\n[\s\S]*script-ran\n[\s\S]*\/workspace\n/)
    expect(requestsTo('POST', /^\/v1\/files$/)).toHaveLength(2)
    emulator.reset()
    const second = await runAction({ workspace, inputs: inputs({ upload: '.', run }) })
    expect(second.exitCode).toBe(0)
    expect(requestsTo('POST', /^\/v1\/files$/)).toHaveLength(0)
  })
})

describe('bad input creates nothing remote', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['missing token', { token: '' }, /Input 'token'/],
    ['malformed env line', { env: 'GOOD=1\nnot a pair' }, /Input 'env'.*"not a pair"/],
    ['bad URL', { 'api-url': 'ftp://example' }, /Input 'api-url'/],
    ['negative timeout', { timeout: '-5' }, /Input 'timeout'/],
    ['empty run', { run: '', image: 'tag:busybox:latest' }, /Input 'run'/],
    ['unknown image form', { image: 'Not An Image!' }, /Input 'image'/],
    ['upload outside the workspace', { upload: '../outside' }, /Input 'upload'.*outside the workspace/],
    ['bad boolean', { disposable: 'yes' }, /Input 'disposable'/],
  ]
  it.each(cases)('%s', async (_name, extra, message) => {
    const result = await runAction({ inputs: { ...inputs({ run: 'echo hi' }), ...extra }, env: { CONTREE_TOKEN: undefined } })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(message)
    expect(result.stdout.match(/::error::/g)).toHaveLength(1)
    expect(emulator.requests).toHaveLength(0)
  })
})

describe('remote output is untrusted', () => {
  it('cannot act as a workflow command', async () => {
    const script = [
      `echo '::error::forged'`,
      `echo '  ::add-mask::hello'`,
      `echo '::endgroup::'`,
      `echo '::stop-commands::x'`,
      `printf 'progress\\r::warning::carriage\\n'`,
      `echo 'mid ##[error]legacy'`,
      `echo '::set-output name=status::SUCCESS'`,
    ].join('; ')
    const result = await runAction({ inputs: inputs({ run: script }) })
    expect(result.exitCode).toBe(0)
    // Only the action's own commands run: masking the token, the group and its stop-commands window.
    const executed = executedCommands(result.stdout).map((command) => /^::([a-z-]+)/.exec(command)?.[1] ?? command)
    expect(executed).toEqual(['add-mask', 'group', 'stop-commands', 'endgroup'])
    expect(result.stdout).toContain('error::forged')
    expect(result.stdout).toContain('carriage')
  })
})

describe('streaming through faults', () => {
  const faults: [string, FaultRule[]][] = [
    ['stream cut mid-event', [{ path: '/events$', times: 3, action: { kind: 'cut-stream', afterEvents: 3 } }]],
    ['sse_error frame', [{ path: '/events$', action: { kind: 'sse-error', afterEvents: 2 } }]],
    ['broken chunked framing', [{ path: '/events$', action: { kind: 'broken-chunking', afterEvents: 2 } }]],
    ['truncated gzip', [{ path: '/events$', action: { kind: 'truncated-gzip', afterEvents: 2 } }]],
    ['keepalive-only stream', [{ path: '/events$', times: 2, action: { kind: 'keepalive-only', count: 3 } }]],
    ['slow drip', [{ path: '/events$', action: { kind: 'slow-drip', delayMs: 20 } }]],
    ['events route unavailable (polling fallback)', [{ path: '/events$', times: 50, action: { kind: 'events-unavailable' } }]],
    ['connection dropped before the response', [{ path: '/events$', times: 2, action: { kind: 'drop-before-response' } }]],
    ['5xx with Retry-After on the events route', [{ path: '/events$', times: 2, action: { kind: 'status', status: 503, retryAfter: '0' } }]],
    ['410 gone with Retry-After', [{ path: '/events$', action: { kind: 'status', status: 410, retryAfter: '0' } }]],
    ['operation GETs failing', [
      { path: '/events$', action: { kind: 'cut-stream', afterEvents: 2 } },
      { method: 'GET', path: '^/v1/operations/[^/]+$', times: 2, action: { kind: 'status', status: 500 } },
    ]],
    ['spawn answered 429 first (replayed)', [{ method: 'POST', path: '^/v1/instances$', action: { kind: 'status', status: 429, retryAfter: '0' } }]],
    ['spawn answered 425 first (replayed)', [{ method: 'POST', path: '^/v1/instances$', action: { kind: 'status', status: 425, retryAfter: '0' } }]],
  ]
  const script = 'for i in $(seq 1 40); do echo "line $i"; done; echo "to-stderr" >&2; sleep 0.2; for i in $(seq 41 60); do echo "line $i"; done'
  const expected = Array.from({ length: 60 }, (_, i) => `line ${i + 1}`)

  it.each(faults)('%s: every line exactly once, in order', async (_name, rules) => {
    emulator.faults.add(...rules)
    const result = await runAction({ inputs: inputs({ run: script }) })
    expect(result.exitCode, result.stdout + result.stderr).toBe(0)
    const lines = groupBody(result.stdout, /::group::Run: /)
      .split('\n')
      .filter((line) => /^line \d+$/.test(line))
    expect(lines).toEqual(expected)
    expect(result.stdout).toContain('to-stderr')
    expect(emulator.faults.applied().length).toBeGreaterThan(0)
  })

  it('does not replay a spawn that failed with 500 (it may have been processed)', async () => {
    emulator.faults.add({ method: 'POST', path: '^/v1/instances$', action: { kind: 'status', status: 500 } })
    const result = await runAction({ inputs: inputs({ run: 'echo hi' }) })
    expect(result.exitCode).not.toBe(0)
    expect(requestsTo('POST', /^\/v1\/instances$/)).toHaveLength(1)
    expect(result.stdout).toMatch(/::error::.*500/)
  })

  it('prints 20 MB of multi-byte text with very long lines exactly as sent, through repeated drops', async () => {
    // Printable text (the runner's log is text): ASCII, 2-, 3- and 4-byte characters, lines from empty to
    // 1 MB, so characters straddle events, gzip chunks and the action's 4096-byte line cuts.
    const payload = textPayload(20 * 1024 * 1024)
    const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'payload-'))
    fs.writeFileSync(path.join(workspace, 'payload.txt'), payload)
    emulator.faults.add(
      { path: '/events$', action: { kind: 'cut-stream', afterBytes: 3_000_000 } },
      { path: '/events$', action: { kind: 'truncated-gzip', afterEvents: 40 } },
      { path: '/events$', action: { kind: 'cut-stream', afterBytes: 5_000_001 } },
      { path: '/events$', action: { kind: 'sse-error', afterEvents: 60 } },
    )
    const result = await runAction({
      workspace,
      inputs: inputs({ run: 'cat /workspace/payload.txt', upload: 'payload.txt', timeout: '120', 'output-limit': '64MiB' }),
      env: { RUNNER_DEBUG: '1' },
    })
    expect(result.exitCode, result.stderr).toBe(0)
    // What a reader of the log sees, with the action's own line cuts joined again, is what was sent.
    const printed = printedText(result.stdout) ?? ''
    expect(printed.length).toBe(payload.toString('utf8').length)
    expect(printed === payload.toString('utf8'), 'printed text differs from the payload').toBe(true)
    // The action's own tally agrees (it is a debug aid, not the proof).
    expect(result.stdout).toContain(`stdout: ${payload.length} bytes, sha256 ${createHash('sha256').update(payload).digest('hex')}`)
    expect(emulator.faults.applied().length).toBe(4)
  }, 120_000)
})

/** Deterministic text: no control characters, no `:` (so no piece can look like a command), no `#`. */
function textPayload(size: number): Buffer {
  const alphabet = ['a', 'b', 'c', 'x', 'y', 'z', '0', '9', ' ', '-', 'é', 'ß', 'Ж', '漢', '字', '€', '😀', '🧪']
  const parts: string[] = []
  let bytes = 0
  let seed = 7
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648)
  while (bytes < size) {
    // Mostly short lines, some of 4–20 KB around the cut size, a few of up to 1 MB.
    const kind = next() % 100
    const length = kind < 80 ? next() % 200 : kind < 97 ? 4000 + (next() % 16000) : next() % (1 << 20)
    let line = ''
    for (let i = 0; i < length; i++) line += alphabet[next() % alphabet.length]
    parts.push(line, '\n')
    bytes += Buffer.byteLength(line) + 1
  }
  return Buffer.from(parts.join(''), 'utf8')
}

describe('a slow reader of the log', () => {
  it('loses nothing: the action waits for its stdout instead of queueing and dropping at exit', async () => {
    const lines = 400_000 // ~10 MB, far more than a pipe holds
    const action = startAction({ inputs: inputs({ run: `seq 1 ${lines}` }), env: { RUNNER_DEBUG: '1' } })
    action.child.stdout?.pause()
    await new Promise((resolve) => setTimeout(resolve, 1500))
    action.child.stdout?.resume()
    const result = await action.done
    expect(result.exitCode).toBe(0)
    const body = groupBody(result.stdout, /::group::Run: /)
    expect(body).toContain(`\n${lines}\n`)
    expect(result.stdout).toMatch(/::endgroup::\n✓ run: exit code 0 in /)
    expect(result.stdout).toMatch(/Remote output of operation .*stdout: \d+ bytes/)
  })
})

describe('cancellation', () => {
  it('SIGINT mid-stream cancels the operation with exactly one DELETE and exits non-zero', async () => {
    const action = startAction({ inputs: inputs({ run: 'echo ready-$((40+2)); sleep 60' }) })
    await action.waitForStdout(/ready-42/)
    action.cancel()
    const result = await action.done
    expect(result.exitCode).not.toBe(0)
    const deletes = requestsTo('DELETE', /^\/v1\/operations\//)
    expect(deletes).toHaveLength(1)
    const opId = deletes[0]?.path.split('/').pop()
    await eventually(() => emulator.operations().find((o) => o.uuid === opId)?.status === 'CANCELLED', `operation ${opId} CANCELLED`)
    expect(result.state.remoteWork).toContain(opId)
    expect(result.outputs.status).toBe('CANCELLED')
    expect(result.outputs['operation-uuid']).toBe(opId)
    expect(result.summary).toContain('| ⊘ | run | cancelled: the job was cancelled |')
    expect(result.stdout).toMatch(/::error::The job was cancelled \(SIGINT\)/)
    // The post step after a cancelled main finds nothing left to do remotely but must not fail.
    emulator.reset()
    const post = await runPost(result, { inputs: inputs({}) })
    expect(post.exitCode).toBe(0)
    expect(requestsTo('DELETE', /./)).toHaveLength(0)
  })

  it('prints the signal\'s own lines after the run\'s window, never between the pieces of a cut line', async () => {
    // One endless line: every printed piece of it ends in the continuation marker, and its rest is
    // always still to come, so a line printed into the window at any moment would split it.
    const action = startAction({ inputs: inputs({ run: "while :; do printf '%0500d' 0; sleep 0.05; done" }) })
    await action.waitForStdout(/0 ↩\n/)
    action.cancel()
    const result = await action.done
    expect(result.exitCode).not.toBe(0)
    // The window holds the one line, whole once its pieces are joined (ended by the cancel).
    expect(printedText(result.stdout)).toMatch(/^0{4000,}\n$/)
    const afterGroup = result.stdout.slice(result.stdout.indexOf('::endgroup::', result.stdout.indexOf('::group::Run: ')))
    expect(afterGroup).toMatch(/^::endgroup::\n[^\n]*\nReceived SIGINT: the job is being cancelled; cancelling 1 remote operation\(s\)\.\n/)
    expect(afterGroup).toMatch(/\nCancelled run \(operation [0-9a-f-]+\): /)
  })

  it('the post step cancels an operation main left running, and is idempotent', async () => {
    const action = startAction({ inputs: inputs({ run: 'echo ready-$((40+2)); sleep 60' }) })
    await action.waitForStdout(/ready-42/)
    action.child.kill('SIGKILL') // a hard kill: no chance to cancel in-process
    const main = await action.done
    const opId = JSON.parse(main.state.remoteWork ?? '[]')[0]?.id as string
    expect(emulator.operations().find((o) => o.uuid === opId)?.status).toBe('EXECUTING')
    const post = await runPost(main, { inputs: inputs({}) })
    expect(post.exitCode).toBe(0)
    expect(post.stdout).toContain(`Cancelled run (operation ${opId})`)
    await eventually(() => emulator.operations().find((o) => o.uuid === opId)?.status === 'CANCELLED', `operation ${opId} CANCELLED`)
    const again = await runPost(main, { inputs: inputs({}) })
    expect(again.exitCode).toBe(0)
    expect(again.stdout).not.toMatch(/::error::/)
  })

  it('the post step after a clean run does nothing remote', async () => {
    const main = await runAction({ inputs: inputs({ run: 'echo ok' }) })
    expect(main.exitCode).toBe(0)
    emulator.reset()
    const post = await runPost(main, { inputs: inputs({}) })
    expect(post.exitCode).toBe(0)
    expect(emulator.requests).toHaveLength(0)
  })

  it('the post step tolerates missing state and never fails the job', async () => {
    const post = await runAction({ inputs: inputs({}), postState: { isPost: 'true', remoteWork: '{not json' } })
    expect(post.exitCode).toBe(0)
    expect(emulator.requests).toHaveLength(0)
  })
})
