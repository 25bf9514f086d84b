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
// service. When neither works, the emulator refuses to start and says what to install or configure.
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, readFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { delimiter, join } from 'node:path'
import { inProcessRootFs, RootFsHelper, type RootFs } from './rootfs/client.ts'

export type SandboxMode = 'root' | 'user-namespace'

/** Ids every image may use; the user namespace must map all of them. */
const REQUIRED_IDS = 65536
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

export class SandboxUnavailableError extends Error {}

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

function findTool(name: string): string | undefined {
  for (const dir of HOST_PATH.split(delimiter)) {
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

interface IdRange {
  start: number
  count: number
}

function subordinateRanges(file: string, user: string, uid: number): IdRange[] {
  let text = ''
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return []
  }
  return text
    .split('\n')
    .map((line) => line.trim().split(':'))
    .filter(([owner]) => owner === user || owner === String(uid))
    .map(([, start, count]) => ({ start: Number(start), count: Number(count) }))
    .filter((range) => Number.isInteger(range.start) && Number.isInteger(range.count))
}

function readSysctl(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch {
    return null
  }
}

/** Why the ordinary-user sandbox cannot work here, each with its fix; empty when it should. */
function userNamespaceProblems(user: string, uid: number): string[] {
  const problems: string[] = []
  for (const tool of ['unshare', 'nsenter', 'mount']) {
    if (!findTool(tool)) problems.push(`'${tool}' (util-linux) is missing: sudo apt-get install -y util-linux mount`)
  }
  if (!findTool('newuidmap') || !findTool('newgidmap')) {
    problems.push("newuidmap/newgidmap are missing: install Debian's uidmap package (sudo apt-get install -y uidmap)")
  }
  for (const [file, flag] of [['/etc/subuid', '--add-subuids'], ['/etc/subgid', '--add-subgids']] as const) {
    const ranges = subordinateRanges(file, user, uid)
    if (!ranges.some((range) => range.count >= REQUIRED_IDS)) {
      problems.push(`${user} has no range of ${REQUIRED_IDS} ids in ${file}: sudo usermod ${flag} 100000-165535 ${user}`)
    }
  }
  if (readSysctl('/proc/sys/kernel/unprivileged_userns_clone') === '0') {
    problems.push('unprivileged user namespaces are disabled: sudo sysctl -w kernel.unprivileged_userns_clone=1')
  }
  if (readSysctl('/proc/sys/user/max_user_namespaces') === '0') {
    problems.push('user namespaces are disabled: sudo sysctl -w user.max_user_namespaces=15000')
  }
  if (readSysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1') {
    problems.push(
      'AppArmor confines unprivileged user namespaces (Ubuntu 24.04 default), which denies mounts in them: ' +
        'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0',
    )
  }
  return problems
}

function refusal(mode: SandboxMode, problems: string[]): SandboxUnavailableError {
  const who = mode === 'root' ? 'as root' : `as ${userInfo().username} (uid ${process.getuid?.()})`
  return new SandboxUnavailableError(
    `contree emulator: cannot sandbox commands ${who}, so it does not start (commands must only see their image).\n` +
      problems.map((problem) => `  - ${problem}`).join('\n') +
      '\nSee test/emulator/contree/README.md ("Sandbox").',
  )
}

/** True when the id map (a /proc/PID/uid_map text) maps every id 0..65535. */
function mapsAllIds(map: string): boolean {
  const ranges = map
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number))
    .map(([inside = 0, , count = 0]) => ({ inside, count }))
    .sort((a, b) => a.inside - b.inside)
  let next = 0
  for (const range of ranges) if (range.inside <= next) next = Math.max(next, range.inside + range.count)
  return next >= REQUIRED_IDS
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

  /** Starts the helper in the right place and checks that a command really can be sandboxed. */
  static async start(workDir: string): Promise<Sandbox> {
    const uid = process.getuid?.() ?? -1
    const mode: SandboxMode = uid === 0 ? 'root' : 'user-namespace'
    const unshare = findTool('unshare')
    if (mode === 'root') {
      if (!unshare || !findTool('mount')) throw refusal(mode, ["util-linux's unshare and mount are needed: apt-get install -y util-linux mount"])
    } else {
      const problems = userNamespaceProblems(userInfo().username, uid)
      if (problems.length > 0) throw refusal(mode, problems)
    }
    let fs: RootFs
    try {
      fs = mode === 'root' ? inProcessRootFs() : await RootFsHelper.start([unshare as string, '--user', '--map-auto', '--map-root-user', '--'])
    } catch (error) {
      throw refusal(mode, [`the user namespace could not be made: ${(error as Error).message}`])
    }
    try {
      if (mode === 'user-namespace' && !(mapsAllIds(fs.identity.uidMap) && mapsAllIds(fs.identity.gidMap))) {
        throw refusal(mode, [
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
      throw refusal(mode, [`a test command could not be sandboxed: ${second.output || probe.output}`])
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
