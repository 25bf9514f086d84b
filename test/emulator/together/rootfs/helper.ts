// The Together emulator's root-fs helper process. contree/sandbox.ts starts it (instead of the ConTree
// emulator's own, contree/rootfs/helper.ts) inside the sandbox's user namespace, where it is root; it speaks
// the same line protocol to the same client (contree/rootfs/client.ts): a `ready` line with its identity,
// then one JSON answer line per JSON request line, until stdin closes. It answers the ConTree operations
// (the sandbox itself relies on them) and the Together emulator's own (ops.ts).
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { rootFsOps } from '../../contree/rootfs/ops.ts'
import { togetherFsOps } from './ops.ts'

interface Request {
  id: number
  op: string
  args: unknown
}

const ops: Record<string, (args: never) => Promise<unknown>> = { ...rootFsOps, ...togetherFsOps }

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
  const op = Object.hasOwn(ops, request.op) ? (ops[request.op] as (args: unknown) => Promise<unknown>) : undefined
  if (!op) {
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
