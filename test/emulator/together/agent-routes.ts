// The in-VM agent, "Pint" (sandbox-openapi.json), one per sandbox under `/agents/<sandbox id>`: execs as real
// processes in the sandbox (run-in-root.ts) with their output as an event stream, the filesystem (done as the
// agent's root through the root-fs operations, agent-files.ts), and open ports.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { App } from './app.ts'
import { Exec, supervise } from './execs.ts'
import { badRequest, HttpError, parseJsonObject, type Reply } from './http-io.ts'
import { DEFAULT_PATH } from './image-store.ts'
import { agentStatus } from './rootfs/failure.ts'
import type { Route, RouteContext } from './routing.ts'
import type { SandboxRecord } from './sandboxes.ts'
import { idleUntil, SseWriter } from './sse-writer.ts'
import {
  optionalBoolean,
  optionalString,
  optionalStringMap,
  rejectUnknownFields,
  requiredString,
  requiredStringArray,
} from './validate.ts'

type Ctx = RouteContext<App>

/** The absolute in-sandbox path of a `{path}` parameter: relative paths are relative to the workspace. */
function agentPath(raw: string, workspaceDir: string): string {
  if (raw === '') throw new HttpError(400, 'path is required')
  return posix.normalize(raw.startsWith('/') ? raw : posix.join(workspaceDir, raw))
}

/** A filesystem operation's answer; the failures the agent answers with become their status. */
async function answered<T>(work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (error) {
    const status = agentStatus(error)
    if (status !== null) throw new HttpError(status, (error as Error).message)
    throw error
  }
}

/** The sandbox of an agent route; the server has already checked it is running and the token is its own. */
function sandboxOf(ctx: Ctx): SandboxRecord & { root: string } {
  const sandbox = ctx.app.sandboxes.get(ctx.params[0] as string)
  if (!sandbox || sandbox.root === null) throw new HttpError(502, 'sandbox is not running')
  return sandbox as SandboxRecord & { root: string }
}

function execOr404(sandbox: SandboxRecord, id: string): Exec {
  const exec = sandbox.execs.get(id)
  if (!exec) throw new HttpError(404, `exec ${id} not found`)
  return exec
}

function lastSequenceOf(query: URLSearchParams): number | undefined {
  const raw = query.get('lastSequence')
  if (raw === null) return undefined
  if (!/^-?\d+$/.test(raw) || Math.abs(Number(raw)) > 2 ** 31 - 1) throw new HttpError(400, 'lastSequence must be a 32-bit integer')
  return Number(raw)
}

async function launchExec(app: App, sandbox: SandboxRecord & { root: string }, exec: Exec): Promise<void> {
  const state = await app.fs.call('directoryState', { root: sandbox.root, path: exec.launchSpec.cwd })
  if (state !== 'directory') {
    throw new HttpError(500, `chdir ${exec.launchSpec.cwd}: ${state === 'missing' ? 'no such file or directory' : 'not a directory'}`)
  }
  const proc = await app.runner.runInRoot(sandbox.root, {
    cwd: exec.launchSpec.cwd,
    command: exec.command,
    args: exec.args,
    env: exec.launchSpec.env,
    uid: exec.launchSpec.uid,
    gid: exec.launchSpec.gid,
    stdin: true,
  })
  if (proc.pid) sandbox.groups.add(proc.pid)
  proc.stdin?.on('error', () => undefined)
  app.track(supervise(exec, proc))
}

async function createExec(ctx: Ctx): Promise<Reply> {
  const { app } = ctx
  const sandbox = sandboxOf(ctx)
  const body = parseJsonObject(ctx.req, await ctx.body()) as Record<string, unknown>
  rejectUnknownFields(body, ['command', 'args', 'autostart', 'pty', 'cwd', 'env', 'user'])
  const command = requiredString(body, 'command')
  const args = requiredStringArray(body, 'args')
  const autostart = optionalBoolean(body, 'autostart') ?? true
  if (optionalBoolean(body, 'pty') === true) throw badRequest('pty', 'pty execs are not supported by the emulator')
  const cwd = agentPath(optionalString(body, 'cwd') ?? app.options.workspaceDir, app.options.workspaceDir)
  const env = optionalStringMap(body, 'env') ?? {}
  const user = optionalString(body, 'user')
  let identity
  try {
    identity = await app.fs.call('resolveUser', { root: sandbox.root, spec: user ?? app.options.defaultExecUser })
  } catch (error) {
    throw badRequest('user', (error as Error).message)
  }
  const exec = new Exec(command, args, user !== undefined, {
    cwd,
    env: { PATH: DEFAULT_PATH, HOME: identity.home, ...env },
    uid: identity.uid,
    gid: identity.gid,
  })
  if (autostart) await launchExec(app, sandbox, exec)
  sandbox.execs.set(exec.id, exec)
  return { status: 201, body: exec.toWire() }
}

async function startExec(ctx: Ctx): Promise<Reply> {
  const sandbox = sandboxOf(ctx)
  const exec = execOr404(sandbox, ctx.params[1] as string)
  if (exec.status === 'CREATED') await launchExec(ctx.app, sandbox, exec)
  else if (exec.status !== 'RUNNING') throw new HttpError(409, `exec ${exec.id} is ${exec.status} and cannot be started`)
  return { status: 200, body: exec.toWire() }
}

function deleteExec(ctx: Ctx): Reply {
  const sandbox = sandboxOf(ctx)
  const exec = execOr404(sandbox, ctx.params[1] as string)
  exec.end('deleted')
  sandbox.execs.delete(exec.id)
  return { status: 200, body: { message: 'Exec deleted successfully' } }
}

async function execInput(ctx: Ctx): Promise<Reply> {
  const sandbox = sandboxOf(ctx)
  const exec = execOr404(sandbox, ctx.params[1] as string)
  const body = parseJsonObject(ctx.req, await ctx.body()) as Record<string, unknown>
  rejectUnknownFields(body, ['type', 'input'])
  const type = requiredString(body, 'type')
  if (type !== 'stdin' && type !== 'resize') throw badRequest('type', 'type must be stdin or resize')
  if (typeof body.input !== 'string') throw badRequest('input', '"input" is required and must be a string')
  if (exec.status !== 'RUNNING') throw new HttpError(400, `exec ${exec.id} is ${exec.status}`)
  // The agent ends each input with a newline (the CLI relies on it); resize means nothing without a pty.
  if (type === 'stdin') exec.process?.stdin?.write(`${body.input}\n`)
  return { status: 200, body: exec.toWire() }
}

/** Replays the buffered frames after `lastSequence`, then follows; the frame with `exitCode` ends it. */
async function streamExecOutput(ctx: Ctx): Promise<void> {
  const sandbox = sandboxOf(ctx)
  const exec = execOr404(sandbox, ctx.params[1] as string)
  let index = exec.startIndex(lastSequenceOf(ctx.query))
  const writer = new SseWriter(ctx.res, ctx.gzip)
  const fault = ctx.streamFault
  const limit = fault && 'afterEvents' in fault ? fault.afterEvents : Infinity
  let sent = 0
  for (;;) {
    if (writer.closed) return
    if (index < exec.frames.length) {
      const frame = `data: ${JSON.stringify(exec.frames[index])}\n\n`
      if (sent >= limit) {
        if (fault?.kind !== 'cut-stream') return writer.end()
        await writer.write(frame.slice(0, Math.floor(frame.length / 2)))
        return writer.cut()
      }
      const last = exec.frames[index]?.exitCode !== undefined
      await writer.write(frame)
      index += 1
      sent += 1
      if (last) return writer.end()
      continue
    }
    if (exec.ended === 'vanished') return writer.cut()
    if (exec.ended !== null) return writer.end()
    if (!(await idleUntil(writer, exec.changed(), ctx.app.options.keepaliveMs))) return
  }
}

function filePath(ctx: Ctx): string {
  return agentPath(ctx.params[1] as string, ctx.app.options.workspaceDir)
}

type PathOp = 'readAgentFile' | 'deleteAgentFile' | 'statAgentFile' | 'createAgentDirectory' | 'listAgentDirectory' | 'deleteAgentDirectory'

/** A route that is one filesystem operation on the `{path}` of the request. */
async function fileRoute(ctx: Ctx, status: number, op: PathOp): Promise<Reply> {
  const body = await answered(ctx.app.fs.call(op, { root: sandboxOf(ctx).root, path: filePath(ctx) }))
  return { status, body: body as unknown as Record<string, unknown> }
}

/** The body goes to a private file first (the emulator cannot write into the sandbox's trees itself), then in. */
async function writeFileRoute(ctx: Ctx): Promise<Reply> {
  const { app } = ctx
  const root = sandboxOf(ctx).root
  const path = filePath(ctx)
  await answered(app.fs.call('checkAgentWritable', { root, path }))
  const uploads = join(app.dataDir, 'uploads')
  await mkdir(uploads, { recursive: true })
  const source = join(uploads, `agent-${randomUUID()}`)
  try {
    const out = createWriteStream(source, { mode: 0o600 })
    await once(out, 'open')
    for await (const chunk of ctx.req) {
      ctx.record.bodyBytes += (chunk as Buffer).length
      if (!out.write(chunk)) await once(out, 'drain')
    }
    await new Promise<void>((done, fail) => out.end((error?: Error | null) => (error ? fail(error) : done())))
    return { status: 201, body: await answered(app.fs.call('writeAgentFile', { root, path, source })) }
  } finally {
    await rm(source, { force: true })
  }
}

async function fileActionRoute(ctx: Ctx): Promise<Reply> {
  const sandbox = sandboxOf(ctx)
  const body = parseJsonObject(ctx.req, await ctx.body()) as Record<string, unknown>
  rejectUnknownFields(body, ['action', 'destination', 'recursive'])
  const action = requiredString(body, 'action')
  if (action !== 'move' && action !== 'copy') throw badRequest('action', 'action must be move or copy')
  const destination = agentPath(requiredString(body, 'destination'), ctx.app.options.workspaceDir)
  const recursive = optionalBoolean(body, 'recursive') ?? false
  return { status: 200, body: await answered(ctx.app.fs.call('agentFileAction', { root: sandbox.root, from: filePath(ctx), action, to: destination, recursive })) }
}

const AGENT = '^/agents/([^/]+)/api/v1'

function route(method: string, path: string, handler: Route<App>['handler'], stream?: Route<App>['stream']): Route<App> {
  return { method, pattern: new RegExp(`${AGENT}${path}$`), handler, ...(stream ? { stream } : {}) }
}

export const AGENT_ROUTES: ReadonlyArray<Route<App>> = [
  route('POST', '/execs', createExec),
  route('GET', '/execs', (ctx) => ({
    status: 200,
    body: { execs: [...sandboxOf(ctx).execs.values()].reverse().map((exec) => exec.toWire()) },
  })),
  route('POST', '/execs/([^/]+)/start', startExec),
  route('GET', '/execs/([^/]+)', (ctx) => ({ status: 200, body: execOr404(sandboxOf(ctx), ctx.params[1] as string).toWire() })),
  route('DELETE', '/execs/([^/]+)', deleteExec),
  route('GET', '/execs/([^/]+)/io', (ctx) => {
    const exec = execOr404(sandboxOf(ctx), ctx.params[1] as string)
    return { status: 200, body: exec.frames.slice(exec.startIndex(lastSequenceOf(ctx.query))) }
  }),
  route('POST', '/execs/([^/]+)/io', execInput),
  route('GET', '/stream/execs/([^/]+)/io', streamExecOutput, 'exec-io'),
  route('GET', '/files/(.+)', (ctx) => fileRoute(ctx, 200, 'readAgentFile')),
  route('POST', '/files/(.+)', writeFileRoute),
  route('DELETE', '/files/(.+)', (ctx) => fileRoute(ctx, 200, 'deleteAgentFile')),
  route('PATCH', '/files/(.+)', fileActionRoute),
  route('GET', '/file_stat/(.+)', (ctx) => fileRoute(ctx, 200, 'statAgentFile')),
  route('POST', '/directories/(.+)', (ctx) => fileRoute(ctx, 201, 'createAgentDirectory')),
  route('GET', '/directories/(.+)', (ctx) => fileRoute(ctx, 200, 'listAgentDirectory')),
  route('DELETE', '/directories/(.+)', (ctx) => fileRoute(ctx, 200, 'deleteAgentDirectory')),
  route('GET', '/ports', async (ctx) => ({ status: 200, body: { ports: await ctx.app.fs.call('listeningPorts', { groups: [...sandboxOf(ctx).groups] }) } })),
]
