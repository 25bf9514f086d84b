// Where instance commands run: chrooted into the instance root, which holds nothing but the image
// (plus /dev, bound read-only from the host, and a fresh /proc), in their own mount and pid
// namespaces, as the spawn's uid/gid with no supplementary groups.
//
// As root that is all there is (the filesystem operations of rootfs/ops.ts run in the emulator's
// process). As an ordinary user, the emulator first makes one user namespace with a full id mapping
// (0 = the emulator's user, 1..65535 = its /etc/subuid and /etc/subgid range, via
// newuidmap/newgidmap) and keeps it alive in the root-fs helper process; every filesystem operation
// that needs owners runs in that helper, and every command enters the same namespace with nsenter. So
// owners are real inside the sandbox: `id`, `stat -c %u:%g` and permission checks behave as on the
// service. When it cannot sandbox, the emulator refuses to start and says what to install or configure
// (sandbox-preflight.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { inProcessRootFs, RootFsHelper, type RootFs } from './rootfs/client.ts'
import { findTool, hostFacts, mapsAllIds, refusal, REQUIRED_IDS, userNamespaceProblems, type SandboxMode } from './sandbox-preflight.ts'

export type { SandboxMode }
export { SandboxUnavailableError } from './sandbox-preflight.ts'

const HOST_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'
const MOUNT_POINTS = ['dev', 'proc'] as const

// Runs on the host inside the command's new mount namespace, before the chroot: binds /dev
// read-only (device nodes still work; nothing can be created in the host's /dev), then execs the
// final unshare with exactly the spawn's environment (`env -i`), which chroots, changes directory,
// mounts /proc for the new pid namespace, drops to uid/gid and execs the command from the image.
const WRAPPER = [
  'root=$1; bind_dev=$2; shift 2',
  'if [ "$bind_dev" = 1 ] && ! mount -o rbind,ro /dev "$root/dev"; then',
  '  echo "contree emulator: cannot bind /dev into the sandbox" >&2; exit 125',
  'fi',
  'exec env -i -- "$@"',
].join('\n')

export interface LaunchSpec {
  /** Host path of the instance root. */
  root: string
  /** Working directory inside the root (already known to exist). */
  cwd: string
  command: string
  args: string[]
  env: Record<string, string>
  uid: number
  gid: number
  /** Mount points the root has (from prepareMountPoints). */
  mountPoints: readonly string[]
  withStdin: boolean
}

export class Sandbox {
  readonly mode: SandboxMode
  /** Runs the filesystem operations that need owners (see rootfs/ops.ts). */
  readonly fs: RootFs
  /** Whether commands get a /proc (a fresh proc mount needs a fully visible /proc on the host). */
  readonly procMounted: boolean
  private readonly unshare: string
  private readonly nsenter: string | undefined

  private constructor(mode: SandboxMode, fs: RootFs, tools: { unshare: string; nsenter: string | undefined }, procMounted: boolean) {
    this.mode = mode
    this.fs = fs
    this.unshare = tools.unshare
    this.nsenter = tools.nsenter
    this.procMounted = procMounted
  }

  /**
   * Starts the helper in the right place and checks that a command really can be sandboxed.
   * `helperScript`: another emulator's helper (see RootFsHelper.start), used in user-namespace mode.
   */
  static async start(workDir: string, helperScript?: string): Promise<Sandbox> {
    const uid = process.getuid?.() ?? -1
    const mode: SandboxMode = uid === 0 ? 'root' : 'user-namespace'
    const unshare = findTool('unshare')
    if (mode === 'root') {
      if (!unshare || !findTool('mount')) throw refusal(who(mode), ["util-linux's unshare and mount are needed: apt-get install -y util-linux mount"])
    } else {
      const problems = userNamespaceProblems(userInfo().username, uid, hostFacts)
      if (problems.length > 0) throw refusal(who(mode), problems)
    }
    let fs: RootFs
    try {
      fs = mode === 'root' ? inProcessRootFs() : await RootFsHelper.start([unshare as string, '--user', '--map-auto', '--map-root-user', '--'], helperScript)
    } catch (error) {
      throw refusal(who(mode), [`the user namespace could not be made: ${(error as Error).message}`])
    }
    try {
      if (mode === 'user-namespace' && !(mapsAllIds(fs.identity.uidMap) && mapsAllIds(fs.identity.gidMap))) {
        throw refusal(who(mode), [
          `the user namespace maps too few ids (uid_map: ${fs.identity.uidMap.trim().replace(/\n\s*/g, '; ')}); ` +
            `give the user a range of ${REQUIRED_IDS} ids in /etc/subuid and /etc/subgid`,
        ])
      }
      const tools = { unshare: unshare as string, nsenter: mode === 'root' ? undefined : findTool('nsenter') }
      const withProc = new Sandbox(mode, fs, tools, true)
      const probe = await withProc.probe(workDir)
      if (probe.ok) return withProc
      const withoutProc = new Sandbox(mode, fs, tools, false)
      const second = await withoutProc.probe(workDir)
      if (second.ok) return withoutProc
      throw refusal(who(mode), [`a test command could not be sandboxed: ${second.output || probe.output}`])
    } catch (error) {
      await fs.close()
      throw error
    }
  }

  /**
   * Spawns the command in a new process group (so everything it starts can be killed at once). The
   * returned pid is the outer unshare's; it exits with the command's code or dies of its signal.
   */
  launch(spec: LaunchSpec): ChildProcess {
    const finalUnshare = [
      this.unshare,
      `--root=${spec.root}`,
      `--wd=${spec.cwd}`,
      `--setgid=${spec.gid}`,
      `--setuid=${spec.uid}`,
      ...(this.procMounted && spec.mountPoints.includes('proc') ? ['--mount-proc=/proc'] : []),
      '--',
      spec.command,
      ...spec.args,
    ]
    const assignments = Object.entries(spec.env).map(([name, value]) => `${name}=${value}`)
    const bindDev = spec.mountPoints.includes('dev') ? '1' : '0'
    const namespaces = [this.unshare, '--mount', '--pid', '--fork', '--kill-child', '--', '/bin/sh', '-c', WRAPPER, 'contree-sandbox', spec.root, bindDev, ...assignments, ...finalUnshare]
    const argv = this.nsenter ? [this.nsenter, `--target=${this.fs.identity.pid}`, '--user', '--', ...namespaces] : namespaces
    return spawn(argv[0] as string, argv.slice(1), {
      env: { PATH: HOST_PATH },
      detached: true,
      stdio: [spec.withStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    })
  }

  /** The names under an instance root that are mounted over while a command runs. */
  get mountPoints(): readonly string[] {
    return MOUNT_POINTS
  }

  async close(): Promise<void> {
    await this.fs.close()
  }

  /** Runs a command that cannot exist in an empty root: unshare must get as far as exec (code 127). */
  private async probe(workDir: string): Promise<{ ok: boolean; output: string }> {
    const root = join(workDir, 'sandbox-probe')
    await this.fs.call('makeDirectory', { path: root, mode: 0o755 })
    const points = await this.fs.call('prepareMountPoints', { root, names: [...MOUNT_POINTS] })
    const child = this.launch({
      root,
      cwd: '/',
      command: '/contree-emulator-probe',
      args: [],
      env: {},
      uid: 65534,
      gid: 65534,
      mountPoints: points.usable,
      withStdin: false,
    })
    let output = ''
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => {
      child.once('error', (error) => {
        output += error.message
        resolve(null)
      })
      child.once('close', (exitCode) => resolve(exitCode))
    })
    await this.fs.call('removeTree', { path: root })
    return { ok: code === 127 && output.includes('/contree-emulator-probe'), output: output.trim() }
  }
}

/** Kills the whole process group; a group that is already gone is fine. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: nothing left to kill.
  }
}

function who(mode: SandboxMode): string {
  return mode === 'root' ? 'as root' : `as ${userInfo().username} (uid ${process.getuid?.()})`
}
