// How the Together emulator runs a command today (moved here from the ConTree emulator, whose own
// sandbox now holds only the image: contree/sandbox.ts). As root with a working `unshare --mount`,
// the command runs chrooted into the root inside a private mount namespace, with the host's
// userland bind-mounted read-only where the image has none; otherwise it runs on the host with its
// cwd inside the root. run-in-root.ts is the one caller; moving it onto contree/sandbox.ts (image
// only, user namespace for ordinary users) is the Together emulator's next step.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { lstat, mkdir, readdir, readlink, rmdir, symlink, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Host directories an image without its own userland borrows (read-only; /dev for /dev/null & co). */
const HOST_DIRS: ReadonlyArray<{ path: string; readOnly: boolean }> = [
  { path: '/bin', readOnly: true },
  { path: '/usr', readOnly: true },
  { path: '/lib', readOnly: true },
  { path: '/lib64', readOnly: true },
  { path: '/sbin', readOnly: true },
  { path: '/etc', readOnly: true },
  { path: '/dev', readOnly: false },
]

export interface SandboxInfo {
  sandboxed: boolean
  /** Why the fallback is used, when it is. */
  reason: string | null
}

export async function probeSandbox(): Promise<SandboxInfo> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { sandboxed: false, reason: 'not running as root' }
  }
  try {
    await run('unshare', ['--mount', '--fork', '--', '/bin/sh', '-c', 'exit 0'])
    return { sandboxed: true, reason: null }
  } catch (error) {
    return { sandboxed: false, reason: `unshare --mount failed: ${(error as Error).message.split('\n')[0]}` }
  }
}

export interface LaunchSpec {
  root: string
  cwd: string
  command: string
  args: string[]
  env: Record<string, string>
  uid: number
  gid: number
  withStdin: boolean
}

/** What was added to the instance root for the run; undone before the root becomes an image. */
export interface MountPlan {
  mounts: Array<{ path: string; readOnly: boolean }>
  created: Array<{ path: string; kind: 'dir' | 'symlink' }>
}

async function lstatOrNull(path: string) {
  try {
    return await lstat(path)
  } catch {
    return null
  }
}

export async function planMounts(root: string): Promise<MountPlan> {
  const plan: MountPlan = { mounts: [], created: [] }
  for (const host of HOST_DIRS) {
    const hostStat = await lstatOrNull(host.path)
    if (!hostStat) continue
    const target = join(root, host.path)
    const targetStat = await lstatOrNull(target)
    if (hostStat.isSymbolicLink()) {
      // Merged-/usr hosts: mirror the link (e.g. bin -> usr/bin) unless the image has its own entry.
      if (!targetStat) {
        await symlink(await readlink(host.path), target)
        plan.created.push({ path: target, kind: 'symlink' })
      }
      continue
    }
    if (!hostStat.isDirectory()) continue
    if (!targetStat) {
      await mkdir(target, { mode: 0o755 })
      plan.created.push({ path: target, kind: 'dir' })
      plan.mounts.push(host)
    } else if (targetStat.isDirectory() && (await readdir(target)).length === 0) {
      plan.mounts.push(host)
    }
    // An image that brings its own non-empty directory keeps it: imported images use their own userland.
  }
  return plan
}

/** Removes the mount points and links planMounts created (the namespace, and its mounts, died with the process). */
export async function undoMounts(plan: MountPlan): Promise<void> {
  for (const entry of [...plan.created].reverse()) {
    try {
      if (entry.kind === 'dir') await rmdir(entry.path)
      else await unlink(entry.path)
    } catch {
      // A non-empty mount point means the command wrote through an absent mount; keep its content.
    }
  }
}

// Runs on the host inside the new mount namespace: bind the planned directories, then let a second
// unshare (no new namespaces) chroot + chdir + exec, so the image needs no shell of its own.
const MOUNT_SCRIPT = [
  'set -e',
  'R=$1; W=$2; n=$3; shift 3',
  'while [ "$n" -gt 0 ]; do',
  '  if [ "$1" = ro ]; then /usr/bin/mount -o bind,ro "$2" "$R$2"; else /usr/bin/mount -o bind "$2" "$R$2"; fi',
  '  shift 2; n=$((n-1))',
  'done',
  'exec /usr/bin/unshare --root="$R" --wd="$W" "$@"',
].join('\n')

export function launch(info: SandboxInfo, plan: MountPlan | null, spec: LaunchSpec): ChildProcess {
  const stdio: ['pipe' | 'ignore', 'pipe', 'pipe'] = [spec.withStdin ? 'pipe' : 'ignore', 'pipe', 'pipe']
  if (!info.sandboxed || !plan) {
    return spawn(spec.command, spec.args, {
      cwd: join(spec.root, spec.cwd),
      env: { ...spec.env, CONTREE_EMULATOR_ROOT: spec.root },
      detached: true,
      stdio,
    })
  }
  const mountArgs = plan.mounts.flatMap((m) => [m.readOnly ? 'ro' : 'rw', m.path])
  const identity = spec.uid !== 0 || spec.gid !== 0 ? ['--setgid', String(spec.gid), '--setuid', String(spec.uid)] : []
  const argv = [
    '--mount',
    '--fork',
    '--',
    '/bin/sh',
    '-c',
    MOUNT_SCRIPT,
    'contree-mount',
    spec.root,
    spec.cwd,
    String(plan.mounts.length),
    ...mountArgs,
    ...identity,
    '--',
    spec.command,
    ...spec.args,
  ]
  return spawn('/usr/bin/unshare', argv, { env: spec.env, detached: true, stdio })
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
