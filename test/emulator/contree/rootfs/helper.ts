// The root-fs helper process: started by the emulator (as root, or inside the sandbox's user
// namespace where it is root), it answers one JSON request per line on stdin with one JSON line on
// stdout, and exits when stdin closes (the emulator went away).
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { rootFsOps, type RootFsOps } from './ops.ts'

interface Request {
  id: number
  op: keyof RootFsOps
  args: unknown
}

// Directories created here are 0755 and files follow their explicit modes, whatever the caller's umask.
process.umask(0o022)

const send = (message: unknown): void => {
  process.stdout.write(JSON.stringify(message) + '\n')
}

const idMap = (file: string): string => {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

send({ ready: { pid: process.pid, uid: process.getuid?.() ?? -1, uidMap: idMap('/proc/self/uid_map'), gidMap: idMap('/proc/self/gid_map') } })

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  let request: Request
  try {
    request = JSON.parse(line) as Request
  } catch {
    send({ id: -1, error: { message: `unreadable request: ${line.slice(0, 200)}` } })
    return
  }
  const op = rootFsOps[request.op] as ((args: unknown) => Promise<unknown>) | undefined
  if (typeof op !== 'function') {
    send({ id: request.id, error: { message: `unknown operation ${String(request.op)}` } })
    return
  }
  op(request.args).then(
    (result) => send({ id: request.id, result: result ?? null }),
    (error: unknown) => {
      const failure = error as NodeJS.ErrnoException & { stderr?: string }
      const detail = typeof failure.stderr === 'string' && failure.stderr.trim() ? `: ${failure.stderr.trim()}` : ''
      send({ id: request.id, error: { message: `${failure.message ?? String(error)}${detail}`, code: failure.code ?? null } })
    },
  )
})
lines.on('close', () => process.exit(0))
