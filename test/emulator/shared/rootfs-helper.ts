// The helper end of the root-fs line protocol, whose client is contree/rootfs/client.ts (RootFsHelper).
// Each emulator's rootfs/helper.ts is a process that calls runRootFsHelper with the operations it answers;
// the protocol, the identity it reports and the way errors travel are the same for both, so they live here.
// The process is started by the emulator (as root, or inside the sandbox's user namespace where it is
// root): it writes a `ready` line with its identity, answers one JSON request per line on stdin with one
// JSON line on stdout, and exits when stdin closes (the emulator went away).
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

/** A helper operation: one JSON-able argument object in, JSON-able data (or nothing) out. */
export type RootFsHelperOp = (args: never) => Promise<unknown>

interface Request {
  id: number
  op: string
  args: unknown
}

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

/** Serves `ops` over stdin/stdout until stdin closes, then exits the process. */
export function runRootFsHelper(ops: Readonly<Record<string, RootFsHelperOp>>): void {
  // Directories created here are 0755 and files follow their explicit modes, whatever the caller's umask.
  process.umask(0o022)

  // The client checks the uid and maps: they are the mapping every sandbox command shares.
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
    // Own properties only: an operation named after an Object.prototype member is unknown, not called.
    const op = Object.hasOwn(ops, request.op) ? (ops[request.op] as (args: unknown) => Promise<unknown>) : undefined
    if (!op) {
      send({ id: request.id, error: { message: `unknown operation ${String(request.op)}` } })
      return
    }
    op(request.args).then(
      (result) => send({ id: request.id, result: result ?? null }),
      (error: unknown) => {
        // A failed command an operation ran (cp, tar) carries its stderr, which says more than the exit status.
        const failure = error as NodeJS.ErrnoException & { stderr?: string }
        const detail = typeof failure.stderr === 'string' && failure.stderr.trim() ? `: ${failure.stderr.trim()}` : ''
        send({ id: request.id, error: { message: `${failure.message ?? String(error)}${detail}`, code: failure.code ?? null } })
      },
    )
  })
  lines.on('close', () => process.exit(0))
}
