/**
 * A Together sandbox holds its image and nothing else, runs each exec as the requested user with real
 * owners, and is one machine: its execs share a process space, and what they leave running keeps running
 * until the sandbox ends. Runs the same as root and as an ordinary user (user namespace with a full id map).
 */
import { describe, expect, it } from 'vitest'
import type { TogetherEmulator } from './index.ts'
import { agent, api, execToEnd, runningSandbox, useRunningSandbox, waitUntil } from './test-client.ts'

let emu: TogetherEmulator
let sandbox: any

useRunningSandbox((started, box) => {
  emu = started
  sandbox = box
})

/** Runs `sh -c script` to its end; returns stdout, stderr and the exit code. */
async function sh(box: any, script: string, opts: { user?: string; cwd?: string } = {}) {
  const { frames } = await execToEnd(box, 'sh', ['-c', script], opts)
  const text = (type: string) => frames.filter((f) => f.type === type && f.exitCode === undefined).map((f) => f.output).join('')
  return { stdout: text('stdout'), stderr: text('stderr'), exitCode: frames.at(-1).exitCode as number }
}

describe('Together emulator sandbox: only the image', () => {
  it('has none of the host userland, not even behind /proc/1', async () => {
    const { stdout } = await sh(
      sandbox,
      `for t in bash node python3 apt-get; do command -v $t || echo "no $t"; done; ls /usr; ls /; test -e /usr/bin/node || echo "no /usr/bin/node"; ` +
        `test -e ${process.execPath} || echo "no emulator node"; cat /proc/1/comm; ls /proc/1/root/usr`,
      { user: 'root' },
    )
    expect(stdout).toBe(
      [
        ...['no bash', 'no node', 'no python3', 'no apt-get', 'bin', 'sbin'],
        ...['bin', 'dev', 'etc', 'home', 'linuxrc', 'proc', 'root', 'sbin', 'sys', 'tmp', 'usr', 'var'],
        ...['no /usr/bin/node', 'no emulator node', 'sh', 'bin', 'sbin', ''],
      ].join('\n'),
    )
  })

  it('an image without a shell has nothing to run', async () => {
    const ref = await emu.seedImage({ ref: 'distroless-like:1', image: 'distroless' })
    const snapshot = (await api(emu, 'POST', '/snapshots', { image: ref })).json()
    const box = await runningSandbox(emu, snapshot.id)
    for (const command of ['ls', 'sh', '/bin/busybox']) {
      const { frames } = await execToEnd(box, command, [])
      expect(frames.at(-1).exitCode, command).toBe(127)
    }
    await api(emu, 'POST', `/sandboxes/${box.id}/terminate`)
  })
})

describe('Together emulator sandbox: users and owners', () => {
  it('runs an exec as the requested user: uid[:gid] or a name from the image', async () => {
    expect((await sh(sandbox, 'id -u; id -un; id -G')).stdout).toBe('1000\napp\n1000\n')
    expect((await sh(sandbox, 'id', { user: 'app' })).stdout).toBe('uid=1000(app) gid=1000(app)\n')
    expect((await sh(sandbox, 'id', { user: 'nobody' })).stdout).toBe('uid=65534(nobody) gid=65534(nogroup)\n')
    expect((await sh(sandbox, 'id -u; id -g', { user: '4242:100' })).stdout).toBe('4242\n100\n')
    expect((await sh(sandbox, 'id', { user: 'root' })).stdout).toBe('uid=0(root) gid=0(root)\n')
  })

  it('a uid-1000 exec cannot write /etc or /root; root can, and what each writes is its own', async () => {
    const app = await sh(sandbox, 'touch /etc/x 2>&1; ls /root 2>&1; touch /home/app/mine && stat -c "%u:%g %a" /home/app/mine')
    expect(app.stdout).toBe('touch: /etc/x: Permission denied\nls: can\'t open \'/root\': Permission denied\n1000:1000 644\n')
    const root = await sh(sandbox, 'touch /etc/x && stat -c "%u:%g" /etc/x; stat -c "%u:%g %a" /home/app /tmp /root /etc', { user: 'root' })
    expect(root.stdout).toBe('0:0\n1000:1000 755\n0:0 1777\n0:0 700\n0:0 755\n')
  })

  it('files the agent writes are root’s (0644); a file it overwrites keeps its owner and mode', async () => {
    expect((await agent(sandbox, 'POST', '/files/home/app/by-agent.txt', 'agent\n')).status).toBe(201)
    await sh(sandbox, 'echo mine > /home/app/owned && chmod 600 /home/app/owned')
    expect((await agent(sandbox, 'POST', '/files/home/app/owned', 'from the agent\n')).status).toBe(201)
    const { stdout } = await sh(sandbox, 'stat -c "%u:%g %a" /home/app/by-agent.txt /home/app/owned; cat /home/app/owned; { echo more >> /home/app/by-agent.txt; } 2>&1')
    expect(stdout).toBe("0:0 644\n1000:1000 600\nfrom the agent\nsh: can't create /home/app/by-agent.txt: Permission denied\n")
    // The agent reads as root: a file only its owner may read is still served.
    await sh(sandbox, 'echo secret > /home/app/private && chmod 400 /home/app/private')
    expect((await agent(sandbox, 'GET', '/files/home/app/private')).json().content).toBe('secret\n')
  })
})

describe('Together emulator sandbox: one machine', () => {
  it('what an exec leaves running outlives it, is seen by the next exec, and ends with the sandbox', async () => {
    const box = await runningSandbox(emu, sandbox.snapshot_id)
    const started = await sh(box, 'sleep 300 >/dev/null 2>&1 & echo $!')
    expect(started.exitCode).toBe(0)
    const pid = started.stdout.trim()
    expect((await sh(box, `kill -0 ${pid} && echo alive; test -d /proc/${pid} && echo visible`)).stdout).toBe('alive\nvisible\n')
    await waitUntil(() => emu.counts().processesAlive > 0, 'the background process to be counted')
    await api(emu, 'POST', `/sandboxes/${box.id}/terminate`)
    await api(emu, 'POST', `/sandboxes/${box.id}/wait`)
    await waitUntil(() => emu.counts().processesAlive === 0, 'everything in the sandbox to end')
  })
})
