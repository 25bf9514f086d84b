// The one way this emulator runs a command: `runInRoot(root, spec)`, always in the ConTree emulator's strict
// sandbox (contree/sandbox.ts): chrooted into the root, which holds nothing but the image (plus /dev bound
// read-only and a fresh /proc), as the requested uid/gid, in the emulator's user namespace when it is not
// root. A root nobody holds gets namespaces of its own for the one command, which end with it (a build's
// RUN: whatever the step leaves running dies with it, as with a container). A root held with holdRoot (a
// sandbox's) has one set of namespaces for its whole life, which every command enters
// (sandbox-session.ts): its execs see each other, and what they leave running keeps running.
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { killGroup, type Sandbox } from '../contree/sandbox.ts'
import { membersOfGroups } from './process-groups.ts'
import type { TogetherFs } from './rootfs/client.ts'
import { prepareInit, SandboxSession, type SessionCommand } from './sandbox-session.ts'

/** One shape whether the command runs alone or in a held root's session. */
export type RunSpec = SessionCommand

export interface ExitStatus {
  code: number | null
  signal: NodeJS.Signals | null
  /** Why the process could not be started, if it could not. */
  startError: string | null
}

export interface RunningCommand {
  /** Process (group) id on this host; undefined when it could not be spawned. */
  pid: number | undefined
  stdout: Readable
  stderr: Readable
  stdin: Writable | null
  /** The main process exited (its pipes may still be held open by children). */
  exited: Promise<ExitStatus>
  /** Every holder of the output pipes closed them, and a root prepared for this command alone is clean again. */
  closed: Promise<void>
  /** Kills the whole process group. */
  kill(): void
}

export interface RootRunner {
  runInRoot(root: string, spec: RunSpec): Promise<RunningCommand>
  /** Gives the root its long-lived namespaces until the returned release is called (a sandbox's lifetime). */
  holdRoot(root: string): Promise<() => Promise<void>>
  /** Non-zombie processes left in any process group of a command this runner started (a sandbox's init is not one). */
  processesAlive(): number
  /** SIGKILL to every process group this runner started, sandbox inits included. */
  killAll(): void
}

export async function createRootRunner(sandbox: Sandbox, fs: TogetherFs, dataDir: string): Promise<RootRunner> {
  const initDir = join(dataDir, 'sandbox-init')
  await prepareInit(initDir)
  const sessions = new Map<string, SandboxSession>()
  const groups = new Set<number>()
  // A sandbox's init is the VM, not something the client ran: counted nowhere, killed with the rest.
  const inits = new Set<number>()

  /** A command in namespaces of its own; the root's missing mount points exist only while it runs. */
  const runAlone = async (root: string, spec: RunSpec): Promise<{ child: ChildProcess; cleanUp: () => Promise<void> }> => {
    const points = await fs.call('prepareMountPoints', { root, names: [...sandbox.mountPoints] })
    const cleanUp = () => fs.call('removeMountPoints', { root, names: points.created })
    try {
      const child = sandbox.launch({ root, cwd: spec.cwd, command: spec.command, args: spec.args, env: spec.env, uid: spec.uid, gid: spec.gid, mountPoints: points.usable, withStdin: spec.stdin })
      return { child, cleanUp }
    } catch (error) {
      await cleanUp()
      throw error
    }
  }

  const runInRoot = async (root: string, spec: RunSpec): Promise<RunningCommand> => {
    const session = sessions.get(root)
    const { child, cleanUp } = session ? { child: session.exec(spec), cleanUp: async () => undefined } : await runAlone(root, spec)
    const pid = child.pid
    if (pid) groups.add(pid)
    let startError: string | null = null
    child.on('error', (error) => {
      startError = `failed to start ${spec.command}: ${error.message}`
    })
    const exited = new Promise<ExitStatus>((resolve) => {
      let done = false
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (done) return
        done = true
        resolve({ code, signal, startError })
      }
      child.once('exit', finish)
      // A spawn failure emits 'error' and 'close' but no 'exit'.
      child.once('close', finish)
    })
    // Only once the root is clean again is it "closed": a build step copies it into the layer cache next.
    const closed = new Promise<void>((resolve) => child.once('close', () => void cleanUp().then(resolve, resolve)))
    return {
      pid,
      stdout: child.stdout as Readable,
      stderr: child.stderr as Readable,
      stdin: child.stdin,
      exited,
      closed,
      kill: () => killGroup(pid),
    }
  }

  return {
    runInRoot,
    async holdRoot(root) {
      if (sessions.has(root)) throw new Error(`${root} is already held`)
      const session = await SandboxSession.start(sandbox, fs, root, initDir)
      sessions.set(root, session)
      inits.add(session.pid)
      return async () => {
        if (sessions.get(root) === session) sessions.delete(root)
        await session.stop()
        inits.delete(session.pid)
      }
    },
    processesAlive() {
      const members = membersOfGroups(groups)
      // A group with no member left can never gain one (only a new leader with a recycled pid could start a
      // group of that id, and that would be someone else's), so it is forgotten.
      const live = new Set(members.map((member) => member.group))
      for (const group of groups) if (!live.has(group)) groups.delete(group)
      return members.length
    },
    killAll() {
      for (const pid of [...groups, ...inits]) killGroup(pid)
    },
  }
}
