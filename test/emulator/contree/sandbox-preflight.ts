// Whether this host can sandbox commands the way sandbox.ts does, and the refusal that says what
// to install or configure when it cannot. The host is read through HostFacts so the rules can be
// tested against hosts that are not this one.
import { readFileSync } from 'node:fs'
import { findExecutable } from '../shared/find-executable.ts'

export type SandboxMode = 'root' | 'user-namespace'

/** Ids every image may use; the user namespace must map all of them. */
export const REQUIRED_IDS = 65536
const HOST_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'

export class SandboxUnavailableError extends Error {}

export interface HostFacts {
  /** Absolute path of a host tool, or undefined when it is not installed. */
  findTool(name: string): string | undefined
  /** A file's text, or null when it cannot be read. */
  readText(path: string): string | null
}

export function findTool(name: string): string | undefined {
  return findExecutable(name, HOST_PATH)
}

export const hostFacts: HostFacts = {
  findTool,
  readText(path) {
    try {
      return readFileSync(path, 'utf8')
    } catch {
      return null
    }
  },
}

interface IdRange {
  start: number
  count: number
}

function subordinateRanges(text: string | null, user: string, uid: number): IdRange[] {
  return (text ?? '')
    .split('\n')
    .map((line) => line.trim().split(':'))
    .filter(([owner]) => owner === user || owner === String(uid))
    .map(([, start, count]) => ({ start: Number(start), count: Number(count) }))
    .filter((range) => Number.isInteger(range.start) && Number.isInteger(range.count))
}

/** Why the ordinary-user sandbox cannot work on this host, each with its fix; empty when it should. */
export function userNamespaceProblems(user: string, uid: number, host: HostFacts): string[] {
  const problems: string[] = []
  const sysctl = (name: string) => host.readText(`/proc/sys/${name}`)?.trim() ?? null
  for (const tool of ['unshare', 'nsenter', 'mount']) {
    if (!host.findTool(tool)) problems.push(`'${tool}' (util-linux) is missing: sudo apt-get install -y util-linux mount`)
  }
  if (!host.findTool('newuidmap') || !host.findTool('newgidmap')) {
    problems.push("newuidmap/newgidmap are missing: install Debian's uidmap package (sudo apt-get install -y uidmap)")
  }
  for (const [file, flag] of [['/etc/subuid', '--add-subuids'], ['/etc/subgid', '--add-subgids']] as const) {
    const ranges = subordinateRanges(host.readText(file), user, uid)
    if (!ranges.some((range) => range.count >= REQUIRED_IDS)) {
      problems.push(`${user} has no range of ${REQUIRED_IDS} ids in ${file}: sudo usermod ${flag} 100000-165535 ${user}`)
    }
  }
  if (sysctl('kernel/unprivileged_userns_clone') === '0') {
    problems.push('unprivileged user namespaces are disabled: sudo sysctl -w kernel.unprivileged_userns_clone=1')
  }
  if (sysctl('user/max_user_namespaces') === '0') {
    problems.push('user namespaces are disabled: sudo sysctl -w user.max_user_namespaces=15000')
  }
  if (sysctl('kernel/apparmor_restrict_unprivileged_userns') === '1') {
    problems.push(
      'AppArmor confines unprivileged user namespaces (Ubuntu 24.04 default), which denies mounts in them: ' +
        'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0',
    )
  }
  return problems
}

/** The start-up failure: one line per problem with its fix. `who` is e.g. "as runner (uid 1001)". */
export function refusal(who: string, problems: readonly string[]): SandboxUnavailableError {
  return new SandboxUnavailableError(
    `contree emulator: cannot sandbox commands ${who}, so it does not start (commands must only see their image).\n` +
      problems.map((problem) => `  - ${problem}`).join('\n') +
      '\nSee test/emulator/contree/README.md ("Sandbox").',
  )
}

/** True when the id map (a /proc/PID/uid_map text) maps every id 0..65535. */
export function mapsAllIds(map: string): boolean {
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
