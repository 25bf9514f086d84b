/**
 * The ConTree step helper, run for real on this machine (it is a plain static linux/amd64 program):
 * what it creates, with which owners and modes, what it leaves behind (nothing of its own), how it
 * passes the command's exit, and that the embedded bytes are a fresh compile of helper.c.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { encodeOperations, stepHelperBinary, type HelperOp } from '../../src/providers/contree/step-helper/operations.ts'

const canRun = process.platform === 'linux' && process.arch === 'x64'
// On the service the helper runs as root. An ordinary user (runners are not root) runs it as root of a
// user namespace mapped onto its own ids and subordinate range (what the emulator's sandboxes use), where
// setgroups and chown mean what they mean for root; `me` is then that namespace's root.
const asRoot = (process.getuid?.() ?? 0) === 0
const me = asRoot ? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } : { uid: 0, gid: 0 }
const NAMESPACE = ['unshare', '--user', '--map-auto', '--map-root-user', '--setgroups', 'allow']

function hasGcc(): boolean {
  return spawnSync('gcc', ['--version']).status === 0
}

/** Lays out a staging dir with the helper, its operations and staged files, runs it, returns the result. */
function runHelper(root: string, ops: (stage: string) => HelperOp[], files: Record<string, string> = {}, env: Record<string, string> = {}) {
  const stage = path.join(root, '.sandbox-action')
  mkdirSync(stage)
  writeFileSync(path.join(stage, 'helper'), stepHelperBinary().bytes)
  chmodSync(path.join(stage, 'helper'), 0o700)
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(stage, name), content)
  writeFileSync(path.join(stage, 'operations'), encodeOperations(ops(stage)))
  const command = [...(asRoot ? [] : NAMESPACE), path.join(stage, 'helper'), path.join(stage, 'operations')]
  const result = spawnSync(command[0] as string, command.slice(1), { env: { PATH: '/usr/bin:/bin', ...env }, encoding: 'utf8' })
  return { ...result, stage }
}

describe.skipIf(!canRun)('step helper', () => {
  it('creates WORKDIR parents and copied files with their owners and modes, then runs the command there, and removes itself', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'helper-'))
    mkdirSync(path.join(root, 'src'))
    const result = runHelper(
      root,
      (stage) => [
        { op: 'mkdirs', path: `${root}/app/work`, mode: 0o755, owner: me },
        { op: 'file', staged: `${stage}/f0`, path: `${root}/app/work/bin/tool`, mode: 0o750, owner: me, parents: me },
        { op: 'file', staged: `${stage}/f1`, path: `${root}/src`, mode: 0o644, owner: me, parents: me, intoDirName: 'main.c' },
        { op: 'dir', path: `${root}/app/empty`, mode: 0o700, owner: me, parents: me },
        { op: 'symlink', target: 'bin/tool', path: `${root}/app/work/tool`, owner: me, parents: me },
        { op: 'cwd', path: `${root}/app/work` },
        { op: 'user', uid: me.uid, gid: me.gid, groups: [] },
        { op: 'exec', argv: ['sh', '-c', 'pwd; ./tool; exit 4'] },
      ],
      { f0: '#!/bin/sh\necho tool-ran\n', f1: 'int main;\n' },
    )
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe(`${root}/app/work\ntool-ran\n`)
    expect(result.status).toBe(4)
    expect(lstatSync(`${root}/app/work/bin/tool`).mode & 0o7777).toBe(0o750)
    expect(readFileSync(`${root}/src/main.c`, 'utf8')).toBe('int main;\n')
    expect(lstatSync(`${root}/app/empty`).mode & 0o7777).toBe(0o700)
    expect(readlinkSync(`${root}/app/work/tool`)).toBe('bin/tool')
    expect(existsSync(result.stage)).toBe(false)
  })

  it('mounts exist for the command only: cache dir, secret file and env, bind tree; what they hid comes back', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'helper-'))
    mkdirSync(path.join(root, 'cache'))
    writeFileSync(path.join(root, 'cache', 'old'), 'kept')
    const result = runHelper(
      root,
      (stage) => [
        { op: 'mount-dir', path: `${root}/cache`, mode: 0o755, owner: me },
        { op: 'secret-file', variable: 'SANDBOX_ACTION_0_SECRET', path: `${root}/run/secrets/token`, mode: 0o400, owner: me },
        { op: 'secret-env', variable: 'SANDBOX_ACTION_0_SECRET', name: 'TOKEN' },
        { op: 'mount-tree', path: `${root}/cfg` },
        { op: 'file', staged: `${stage}/f0`, path: `${root}/cfg/app.conf`, mode: 0o644, owner: me, parents: me },
        { op: 'exec', argv: ['sh', '-c', `ls ${root}/cache; cat ${root}/run/secrets/token; echo " $TOKEN"; cat ${root}/cfg/app.conf; env | grep -c SANDBOX_ACTION_ || true; touch ${root}/cache/new`] },
      ],
      { f0: 'conf\n' },
      { SANDBOX_ACTION_0_SECRET: 's3cret' },
    )
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe('s3cret s3cret\nconf\n0\n')
    expect(result.status).toBe(0)
    expect(readFileSync(path.join(root, 'cache', 'old'), 'utf8')).toBe('kept')
    expect(existsSync(path.join(root, 'cache', 'new'))).toBe(false)
    expect(existsSync(path.join(root, 'run'))).toBe(false)
    expect(existsSync(path.join(root, 'cfg'))).toBe(false)
  })

  it('without a command it only applies the operations (an image without a shell)', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'helper-'))
    const result = runHelper(root, (stage) => [{ op: 'file', staged: `${stage}/f0`, path: `${root}/app/config`, mode: 0o600, owner: me, parents: me }], { f0: 'x' })
    expect(result.status).toBe(0)
    expect(readFileSync(`${root}/app/config`, 'utf8')).toBe('x')
  })

  it('a command that is not found exits 127 with a message; a failing operation exits 125 naming the path', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'helper-'))
    const missing = runHelper(root, () => [{ op: 'exec', argv: ['no-such-tool-here'] }])
    expect(missing.status).toBe(127)
    expect(missing.stderr).toMatch(/no-such-tool-here: not found/)
    const root2 = mkdtempSync(path.join(tmpdir(), 'helper-'))
    const broken = runHelper(root2, (stage) => [{ op: 'file', staged: `${stage}/absent`, path: `${root2}/x`, mode: 0o644, owner: me, parents: me }])
    expect(broken.status).toBe(125)
    expect(broken.stderr).toMatch(new RegExp(`rename ${root2}/x`))
  })

  it.skipIf(!hasGcc())('the embedded helper is a fresh compile of helper.c', () => {
    const out = path.join(mkdtempSync(path.join(tmpdir(), 'helper-build-')), 'helper')
    execFileSync('bash', [path.join(import.meta.dirname, '../../scripts/build-step-helper.sh'), out])
    expect(Buffer.compare(readFileSync(out), Buffer.from(stepHelperBinary().bytes))).toBe(0)
  })
})
