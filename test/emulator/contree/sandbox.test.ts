/**
 * Sandboxed commands see their image and nothing else: the catalogue images (test-images.ts) behave
 * like the images they stand in for, owners are real inside the sandbox, and the spawn's uid/gid are
 * honoured. Runs the same as root and as an ordinary user (user namespace with a full id mapping).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STANDARD_PATH } from '../oci-image.ts'
import { TEST_IMAGES } from '../test-images.ts'
import { startContreeEmulator, type ContreeEmulator } from './index.ts'
import { call, parseSse, readStream, spawn, waitTerminal } from './test-client.ts'

let emu: ContreeEmulator
let base: string
const images: Record<string, string> = {}

beforeAll(async () => {
  emu = await startContreeEmulator({ log: () => undefined })
  base = emu.url
  for (const name of ['golang', 'node', 'jupyter', 'distroless'] as const) images[name] = await emu.seedImage({ image: name, tag: `catalogue/${name}` })
})
afterAll(async () => {
  await emu.close()
})

/** Runs a shell command to the end; returns the record with stdout/stderr as text. */
async function sh(body: Record<string, unknown>) {
  const record = await waitTerminal(base, await spawn(base, { shell: true, ...body }))
  return { record, stdout: record.metadata.result?.stdout.value as string, stderr: record.metadata.result?.stderr.value as string }
}

describe('the sandbox holds only the image', () => {
  it('has none of the host userland: no bash, no node, no host /usr', async () => {
    const { stdout } = await sh({ command: 'for t in bash node python3 apt-get; do command -v $t || echo "no $t"; done; ls /usr' })
    expect(stdout).toBe('no bash\nno node\nno python3\nno apt-get\nbin\nsbin\n')
  })

  it('looks commands up only in the image, through the PATH the spawn gives', async () => {
    // `go` lives in /usr/local/go/bin, which only the golang image's own PATH names.
    const standard = await sh({ image: images.golang, command: 'go version' })
    expect(standard.record.metadata.result.state.exit_code).toBe(127)
    const env = TEST_IMAGES.golang.config.Env
    const withImagePath = await sh({
      image: images.golang,
      command: 'go version && go env && pwd',
      cwd: TEST_IMAGES.golang.config.WorkingDir,
      env: Object.fromEntries(env.map((pair) => pair.split(/=(.*)/s).slice(0, 2))),
    })
    expect(withImagePath.stdout).toBe("go version go1.22.5 linux/amd64\nGOPATH='/go'\n/go\n")
    // Exec form: the same lookup happens before the process starts.
    const exec = await waitTerminal(base, await spawn(base, { image: images.golang, command: 'go', args: ['version'] }))
    expect(exec).toMatchObject({ status: 'FAILED', error: `cannot execute go: not found in PATH ${STANDARD_PATH}`, result_image_uuid: null })
  })

  it('gives /dev/null & co. and a /proc of the sandbox’s own pid namespace', async () => {
    const { stdout } = await sh({ command: 'echo x > /dev/null && head -c 4 /dev/zero | wc -c && test -c /dev/urandom && echo urandom && echo $$ && cat /proc/1/comm; true' })
    expect(stdout).toBe('4\nurandom\n1\nsh\n')
  })
})

describe('owners and the spawn uid/gid', () => {
  it('node-like image: a uid-1000 process is user node, cannot write /etc or root-owned dirs, and can write its home', async () => {
    const { stdout, stderr } = await sh({
      image: images.node,
      uid: 1000,
      gid: 1000,
      command: 'id -u; id -un; id -G; touch /etc/x 2>&1 || echo no-etc; mkdir /usr/local/x 2>&1 || echo no-usr; touch /home/node/ok && stat -c "%U:%G %u:%g" /home/node/ok',
    })
    expect(stderr).toBe('')
    expect(stdout).toBe(
      ['1000', 'node', '1000', 'touch: /etc/x: Permission denied', 'no-etc', "mkdir: can't create directory '/usr/local/x': Permission denied", 'no-usr', 'node:node 1000:1000', ''].join('\n'),
    )
  })

  it('node-like image: there is no su or setpriv, so another user is only reachable through uid/gid', async () => {
    const { stdout } = await sh({ image: images.node, command: 'ls /bin/su /bin/setpriv /bin/login 2>&1; node --version' })
    expect(stdout).toBe(
      'ls: /bin/su: No such file or directory\nls: /bin/setpriv: No such file or directory\nls: /bin/login: No such file or directory\nv22.12.0\n',
    )
    for (const tool of ['setpriv', 'su']) {
      const record = await waitTerminal(base, await spawn(base, { image: images.node, command: tool, args: ['--help'] }))
      expect(record).toMatchObject({ status: 'FAILED', error: `cannot execute ${tool}: not found in PATH ${STANDARD_PATH}` })
    }
  })

  it('jupyter-like image: uid 1000 with gid 100 is jovyan in group users, with no supplementary groups', async () => {
    const { stdout } = await sh({
      image: images.jupyter,
      uid: 1000,
      gid: 100,
      cwd: '/home/jovyan',
      command: "id; awk '/^Groups:/ { print NF - 1 }' /proc/self/status; pwd; touch /opt/conda/bin/tool && stat -c %U:%G /opt/conda/bin/tool",
    })
    expect(stdout).toBe('uid=1000(jovyan) gid=100(users)\n0\n/home/jovyan\njovyan:users\n')
  })

  it('files written by a command keep their owner in the result image', async () => {
    const first = await sh({ uid: 1000, gid: 1000, command: 'echo mine > /tmp/mine' })
    const second = await sh({ image: first.record.result_image_uuid, command: 'stat -c "%u:%g %a" /tmp/mine; stat -c "%u:%g %a" /home/app /tmp /root' })
    expect(second.stdout).toBe('1000:1000 644\n1000:1000 755\n0:0 1777\n0:0 700\n')
  })

  it('a uid the sandbox cannot map is refused', async () => {
    const res = await call(base, 'POST', '/v1/instances', { body: { image: 'tag:busybox:latest', command: 'id', uid: 70000 } })
    expect(res.status).toBe(400)
    expect(res.json().error).toBe('uid must be an integer from 0 to 65535')
  })
})

describe('distroless-like image', () => {
  it('has no shell: a shell spawn fails before anything runs, naming /bin/sh', async () => {
    const op = await spawn(base, { image: images.distroless, command: 'echo hi', shell: true })
    const record = await waitTerminal(base, op)
    expect(record).toMatchObject({ status: 'FAILED', error: 'cannot execute /bin/sh: no such file or directory', result_image_uuid: null })
    expect(record.metadata.result).toBeUndefined()
    const log = parseSse((await readStream(base, `/v1/operations/${op}/events`)).text).frames
    expect(log.map((frame) => frame.event)).toEqual(['init', 'completion'])
  })

  it('has no ls either, and its accounts are those of the :nonroot variant', async () => {
    const ls = await waitTerminal(base, await spawn(base, { image: images.distroless, command: 'ls', args: ['/'] }))
    expect(ls).toMatchObject({ status: 'FAILED', error: `cannot execute ls: not found in PATH ${STANDARD_PATH}` })
    const passwd = await call(base, 'GET', `/v1/inspect/${images.distroless}/download?path=/etc/passwd`)
    expect(passwd.body.toString()).toContain('nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n')
    const home = (await call(base, 'GET', `/v1/inspect/${images.distroless}/list?path=/home`)).json()
    expect(home.files).toEqual([expect.objectContaining({ path: 'nonroot', owner: 'nonroot', group: 'nonroot', uid: 65532, gid: 65532, mode: 0o40700 })])
  })
})
