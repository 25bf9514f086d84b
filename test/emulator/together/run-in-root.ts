// The one way this emulator runs a command: `runInRoot(root, spec)`. Today it sits on host-launcher.ts,
// the ConTree emulator's former `launch`/`planMounts` (chroot in a private mount namespace when root, else
// on the host with the cwd inside the root); the shared sandbox runner (contree/sandbox.ts) can replace the
// body of this module without touching its callers.
//
// Host directories are bind-mounted into a root while something runs in it. A root that several processes
// share (a sandbox) is held for its whole life, because removing a mount point from the host view would
// detach it under a process that still runs; a build step's root is prepared and cleaned per command.
import type { ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import type { Readable, Writable } from 'node:stream'
import { killGroup, launch, planMounts, probeSandbox, undoMounts, type MountPlan, type SandboxInfo } from './host-launcher.ts'

export interface RunSpec {
  /** Absolute path inside the root; must exist. */
  cwd: string
  command: string
  args: string[]
  env: Record<string, string>
  uid: number
  gid: number
  /** Give the process a stdin pipe (else /dev/null). */
  stdin: boolean
}

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
  /** Every holder of the output pipes closed them, and the root's mounts for this process are undone. */
  closed: Promise<void>
  /** Kills the whole process group. */
  kill(): void
}

export interface RootRunner {
  readonly sandboxed: boolean
  /** Why commands are not isolated, when they are not. */
  readonly reason: string | null
  runInRoot(root: string, spec: RunSpec): Promise<RunningCommand>
  /** Keeps the root prepared until the returned release is called (a sandbox's lifetime). */
  holdRoot(root: string): Promise<() => Promise<void>>
  /** Non-zombie processes left in any process group this runner started. */
  processesAlive(): number
  /** SIGKILL to every process group this runner started. */
  killAll(): void
}

interface PreparedRoot {
  users: number
  plan: MountPlan | null
}

export async function createRootRunner(): Promise<RootRunner> {
  const info: SandboxInfo = await probeSandbox()
  const prepared = new Map<string, PreparedRoot>()
  const queues = new Map<string, Promise<void>>()
  const groups = new Set<number>()

  // Preparing and cleaning one root must not interleave (a clean-up racing a new plan would remove the
  // mount points the plan relies on), so both go through one queue per root.
  const serial = (root: string, work: () => Promise<void>): Promise<void> => {
    const previous = queues.get(root) ?? Promise.resolve()
    const next = previous.then(work, work)
    queues.set(root, next.catch(() => undefined))
    return next
  }

  const acquire = (root: string) =>
    serial(root, async () => {
      const entry = prepared.get(root)
      if (entry) {
        entry.users += 1
        return
      }
      prepared.set(root, { users: 1, plan: info.sandboxed ? await planMounts(root) : null })
    })

  const release = (root: string) =>
    serial(root, async () => {
      const entry = prepared.get(root)
      if (!entry) return
      entry.users -= 1
      if (entry.users > 0) return
      prepared.delete(root)
      if (entry.plan) await undoMounts(entry.plan)
    })

  const runInRoot = async (root: string, spec: RunSpec): Promise<RunningCommand> => {
    await acquire(root)
    let child: ChildProcess
    try {
      child = launch(info, prepared.get(root)?.plan ?? null, {
        root,
        cwd: spec.cwd,
        command: spec.command,
        args: spec.args,
        env: spec.env,
        uid: spec.uid,
        gid: spec.gid,
        withStdin: spec.stdin,
      })
    } catch (error) {
      await release(root)
      throw error
    }
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
    // Only once the root is cleaned up again is it "closed": a build step copies it into the layer cache next.
    const closed = new Promise<void>((resolve) => child.once('close', () => void release(root).then(resolve, resolve)))
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
    sandboxed: info.sandboxed,
    reason: info.reason,
    runInRoot,
    async holdRoot(root) {
      await acquire(root)
      let released = false
      return async () => {
        if (released) return
        released = true
        await release(root)
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
      for (const pid of groups) killGroup(pid)
    },
  }
}

/** The non-zombie processes whose process group is one of `groups` (zombies await a reaper we do not control). */
export function membersOfGroups(groups: ReadonlySet<number>): Array<{ pid: number; group: number }> {
  const members: Array<{ pid: number; group: number }> = []
  if (groups.size === 0) return members
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return members
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const group = Number(fields[2])
      if (fields[0] !== 'Z' && groups.has(group)) members.push({ pid: Number(entry), group })
    } catch {
      // The process went away while we looked.
    }
  }
  return members
}
