/**
 * The emulator refuses to start where it cannot sandbox, and says what to install or configure:
 * the host checks, run against made-up hosts (a GitHub ubuntu-24.04 runner before the workflow's
 * preparation, a prepared one), and the id-map check of the made namespace.
 */
import { describe, expect, it } from 'vitest'
import { mapsAllIds, refusal, userNamespaceProblems, type HostFacts } from './sandbox-preflight.ts'

function host(opts: { tools?: string[]; files?: Record<string, string> }): HostFacts {
  const tools = new Set(opts.tools ?? ['unshare', 'nsenter', 'mount', 'newuidmap', 'newgidmap'])
  return {
    findTool: (name) => (tools.has(name) ? `/usr/bin/${name}` : undefined),
    readText: (path) => opts.files?.[path] ?? null,
  }
}

const PREPARED = {
  '/etc/subuid': 'runner:100000:65536\n',
  '/etc/subgid': 'runner:100000:65536\n',
  '/proc/sys/kernel/apparmor_restrict_unprivileged_userns': '0\n',
}

describe('userNamespaceProblems', () => {
  it('finds nothing wrong on a prepared host', () => {
    expect(userNamespaceProblems('runner', 1001, host({ files: PREPARED }))).toEqual([])
  })

  it('names every missing piece of an unprepared ubuntu-24.04 runner, each with its fix', () => {
    const problems = userNamespaceProblems(
      'runner',
      1001,
      host({ tools: ['unshare', 'nsenter', 'mount'], files: { '/proc/sys/kernel/apparmor_restrict_unprivileged_userns': '1\n' } }),
    )
    expect(problems).toEqual([
      "newuidmap/newgidmap are missing: install Debian's uidmap package (sudo apt-get install -y uidmap)",
      'runner has no range of 65536 ids in /etc/subuid: sudo usermod --add-subuids 100000-165535 runner',
      'runner has no range of 65536 ids in /etc/subgid: sudo usermod --add-subgids 100000-165535 runner',
      'AppArmor confines unprivileged user namespaces (Ubuntu 24.04 default), which denies mounts in them: ' +
        'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0',
    ])
  })

  it('wants a range of the full 65536 ids, found by name or uid', () => {
    const short = { ...PREPARED, '/etc/subuid': 'runner:100000:65535\n' }
    expect(userNamespaceProblems('runner', 1001, host({ files: short }))).toEqual([
      'runner has no range of 65536 ids in /etc/subuid: sudo usermod --add-subuids 100000-165535 runner',
    ])
    const byUid = { ...PREPARED, '/etc/subuid': 'other:100000:65536\n1001:300000:65536\n' }
    expect(userNamespaceProblems('runner', 1001, host({ files: byUid }))).toEqual([])
  })

  it('notices user namespaces switched off by sysctl', () => {
    const off = { ...PREPARED, '/proc/sys/user/max_user_namespaces': '0\n', '/proc/sys/kernel/unprivileged_userns_clone': '0\n' }
    expect(userNamespaceProblems('runner', 1001, host({ files: off }))).toHaveLength(2)
  })
})

describe('the refusal', () => {
  it('is one message that lists every problem and points at the README', () => {
    const error = refusal('as runner (uid 1001)', ['first problem: fix one', 'second problem: fix two'])
    expect(error.message).toBe(
      'contree emulator: cannot sandbox commands as runner (uid 1001), so it does not start (commands must only see their image).\n' +
        '  - first problem: fix one\n  - second problem: fix two\n' +
        'See test/emulator/contree/README.md ("Sandbox").',
    )
  })
})

describe('mapsAllIds', () => {
  it('accepts the mapping unshare --map-auto --map-root-user makes from a 65536-id range', () => {
    expect(mapsAllIds('         0       1001          1\n         1     100000      65535\n')).toBe(true)
  })

  it('refuses a mapping with too few ids or a hole', () => {
    expect(mapsAllIds('0 1001 1\n1 100000 65534\n')).toBe(false)
    expect(mapsAllIds('0 1001 1\n2 100000 65535\n')).toBe(false)
    expect(mapsAllIds('0 1001 1\n')).toBe(false)
  })
})
