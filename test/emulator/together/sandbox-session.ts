// A running sandbox is a VM: its execs share one process space and one view of the filesystem, and what an
// exec leaves running in the background keeps running after the exec has exited, until the sandbox ends.
// So a sandbox gets its own mount and pid namespaces for its whole life (in the emulator's user namespace
// when it is not root), held by a small init, and every exec enters them. Inside: the image's root with
// /dev bound read-only from the host and a /proc of the sandbox's pid namespace, exactly as the ConTree
// emulator's sandbox (contree/sandbox.ts) gives a single command.
//
// The init is pid 1 of the sandbox. It mounts /dev and /proc, then chroots into the root like every other
// process there, so /proc/1/root is the image too; since nothing from the host may run inside, it runs the
// static busybox the test images are made of (test-images.ts) from a directory outside the root, through
// /proc/self/fd. It only reaps orphans. Without a /proc (hosts that forbid a fresh one) it stays outside
// the root, where no process of the sandbox can see it.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { findTool } from '../contree/sandbox-preflight.ts'
import { killGroup, type Sandbox } from '../contree/sandbox.ts'
import { staticBusybox } from '../test-images.ts'
import type { TogetherFs } from './rootfs/client.ts'

const HOST_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'
const READY_TIMEOUT_MS = 20_000

// Runs on the host as pid 1 of the new pid namespace, inside the new mount namespace, before any chroot.
const INIT = [
  'root=$1; init_dir=$2; bind_dev=$3; mount_proc=$4',
  'if [ "$bind_dev" = 1 ] && ! mount -o rbind,ro /dev "$root/dev"; then',
  '  echo "together emulator: cannot bind /dev into the sandbox" >&2; exit 125',
  'fi',
  // The reaper: `wait` collects any child, the orphans of execs included, while its sleep runs.
  'reap="exec 3<&-; echo ready; while :; do sleep 2147483647 & wait; done"',
  'if [ "$mount_proc" = 1 ]; then',
  '  if ! mount -t proc -o nosuid,nodev,noexec proc "$root/proc"; then',
  '    echo "together emulator: cannot mount /proc in the sandbox" >&2; exit 125',
  '  fi',
  '  exec 3<"$init_dir"',
  '  exec unshare --root="$root" --wd=/ -- /proc/self/fd/3/sh -c "$reap"',
  'fi',
  'eval "$reap"',
].join('\n')

/** What a command runs as: an exec as the agent was asked, or a build's RUN (run-in-root.ts's RunSpec). */
export interface SessionCommand {
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

/** Writes the init's busybox (named `sh`, the applet it runs) into `dir`, once per emulator. */
export async function prepareInit(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  await chmod(dir, 0o755)
  await writeFile(join(dir, 'sh'), staticBusybox().bytes, { mode: 0o755 })
  await chmod(join(dir, 'sh'), 0o755)
}

export class SandboxSession {
  readonly root: string
  /** The init's outer process: its group holds the sandbox's pid 1, whose end ends every process inside. */
  readonly pid: number
  private readonly init: ChildProcess
  private readonly createdMountPoints: string[]
  private readonly userNamespace: boolean
  private readonly tools: { unshare: string; nsenter: string }
  private readonly fs: TogetherFs
  private stopped: Promise<void> | null = null

  private constructor(root: string, init: ChildProcess, created: string[], sandbox: Sandbox, fs: TogetherFs, tools: { unshare: string; nsenter: string }) {
    this.root = root
    this.pid = init.pid as number
    this.init = init
    this.createdMountPoints = created
    this.userNamespace = sandbox.mode === 'user-namespace'
    this.tools = tools
    this.fs = fs
  }

  /** Prepares the root's mount points and starts its init; resolves once pid 1 runs in the root. */
  static async start(sandbox: Sandbox, fs: TogetherFs, root: string, initDir: string): Promise<SandboxSession> {
    const unshare = findTool('unshare')
    const nsenter = findTool('nsenter')
    if (!unshare || !nsenter) throw new Error("util-linux's unshare and nsenter are needed")
    const points = await fs.call('prepareMountPoints', { root, names: [...sandbox.mountPoints] })
    const withProc = sandbox.procMounted && points.usable.includes('proc')
    const namespaces = [unshare, '--mount', '--pid', '--fork', '--kill-child', '--', '/bin/sh', '-c', INIT, 'together-sandbox-init']
    const initArgs = [root, initDir, points.usable.includes('dev') ? '1' : '0', withProc ? '1' : '0']
    const argv =
      sandbox.mode === 'user-namespace' ? [nsenter, `--target=${sandbox.fs.identity.pid}`, '--user', '--', ...namespaces, ...initArgs] : [...namespaces, ...initArgs]
    const init = spawn(argv[0] as string, argv.slice(1), { env: { PATH: HOST_PATH }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      await ready(init)
    } catch (error) {
      killGroup(init.pid)
      await fs.call('removeMountPoints', { root, names: points.created })
      throw error
    }
    // Nothing more is read from it; it must not keep the emulator's process alive.
    init.unref()
    for (const stream of [init.stdout, init.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.()
    return new SandboxSession(root, init, points.created, sandbox, fs, { unshare, nsenter })
  }

  /**
   * Runs a command inside: enters the sandbox's namespaces, chroots into the root, changes to `cwd` and
   * drops to uid/gid (no supplementary groups) with exactly `env`. The process is the leader of a new
   * group; the command and whatever it starts stay in that group, also after the command has exited.
   */
  exec(command: SessionCommand): ChildProcess {
    const enter = [
      this.tools.nsenter,
      `--target=${this.pid}`,
      ...(this.userNamespace ? ['--user'] : []),
      '--mount',
      // The init's outer process only made the pid namespace; its children (pid 1) live in it.
      `--pid=/proc/${this.pid}/ns/pid_for_children`,
      '--',
    ]
    const inside = [this.tools.unshare, `--root=${this.root}`, `--wd=${command.cwd}`, `--setgid=${command.gid}`, `--setuid=${command.uid}`, '--', command.command, ...command.args]
    const argv = [...enter, ...inside]
    return spawn(argv[0] as string, argv.slice(1), {
      env: command.env,
      detached: true,
      stdio: [command.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    })
  }

  /** Ends every process of the sandbox (pid 1 goes, and the kernel takes the rest) and cleans the root. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      const exited = this.init.exitCode !== null || this.init.signalCode !== null ? Promise.resolve() : once(this.init, 'exit')
      // Held until it has exited, or a closing emulator could leave the process before its sandboxes.
      this.init.ref()
      killGroup(this.pid)
      await exited
      await this.fs.call('removeMountPoints', { root: this.root, names: this.createdMountPoints })
    })()
    return this.stopped
  }
}

/** Resolves when the init says `ready`; rejects with what it said when it exits first or takes too long. */
function ready(init: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => fail(`the sandbox init did not start within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS)
    const fail = (why: string) => {
      clearTimeout(timer)
      reject(new Error(`${why}: ${(stderr || stdout).trim() || 'no output'}`))
    }
    init.stderr?.setEncoding('utf8')
    init.stderr?.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)))
    init.stdout?.setEncoding('utf8')
    init.stdout?.on('data', (chunk: string) => {
      stdout += chunk
      if (stdout.includes('ready\n')) {
        clearTimeout(timer)
        resolve()
      }
    })
    init.once('error', (error) => fail(`cannot start the sandbox init: ${error.message}`))
    init.once('exit', (code, signal) => fail(`the sandbox init exited (${signal ?? code})`))
  })
}
