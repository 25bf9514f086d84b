/**
 * Where the protocol notes are silent, the emulator picks the behaviour that breaks a careless
 * client: unknown fields and a sha256 where an upload uuid belongs are refused, a missing working
 * directory is not created, and placed files get root-owned parents.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startContreeEmulator, type ContreeEmulator } from './index.ts'
import { call, parseSse, readStream, spawn, waitTerminal } from './test-client.ts'

let emu: ContreeEmulator
let base: string
let upload: { uuid: string; sha256: string }

beforeAll(async () => {
  emu = await startContreeEmulator({ log: () => undefined })
  base = emu.url
  upload = (await call(base, 'POST', '/v1/files', { body: 'payload\n' })).json()
})
afterAll(async () => {
  await emu.close()
})

async function refusedSpawn(body: Record<string, unknown>): Promise<{ status: number; error: string }> {
  const before = emu.operations().length
  const res = await call(base, 'POST', '/v1/instances', { body: { image: 'tag:busybox:latest', command: 'true', ...body } })
  // A refused spawn creates nothing.
  expect(emu.operations().length).toBe(before)
  return { status: res.status, error: res.json().error }
}

describe('spawn requests are parsed strictly', () => {
  const cases: Array<[string, Record<string, unknown>, number, string]> = [
    ['an unknown top-level field', { working_dir: '/tmp' }, 400, 'unknown field "working_dir"'],
    ['a field spelled another way', { truncateOutputAt: 10 }, 400, 'unknown field "truncateOutputAt"'],
    ['a sha256 where the upload uuid belongs', { files: { '/x': { uuid: 'SHA' } } }, 400, 'files["/x"].uuid must be a file uuid returned by POST /v1/files (that is a sha256; files are placed by upload uuid)'],
    ['the sha256 under its own name', { files: { '/x': { sha256: 'SHA' } } }, 400, 'files["/x"]: unknown field "sha256"'],
    ['an unknown FileSpec field next to the uuid', { files: { '/x': { uuid: 'UUID', owner: 'root' } } }, 400, 'files["/x"]: unknown field "owner"'],
    ['a numeric mode', { files: { '/x': { uuid: 'UUID', mode: 420 } } }, 400, 'files["/x"].mode must be an octal string like "0644"'],
    ['a mode that is not octal', { files: { '/x': { uuid: 'UUID', mode: '0x1ff' } } }, 400, 'files["/x"].mode must be an octal string like "0644"'],
    ['a negative uid in a FileSpec', { files: { '/x': { uuid: 'UUID', uid: -1 } } }, 400, 'files["/x"].uid must be an integer from 0 to 65535'],
    ['a relative file path', { files: { 'x': { uuid: 'UUID' } } }, 400, 'files["x"]: the key must be an absolute path'],
    ['a non-string env value', { env: { N: 1 } }, 400, 'env["N"] must be a string'],
    ['a fractional timeout', { timeout: 1.5 }, 400, 'timeout must be a whole number of seconds'],
    ['a relative cwd', { cwd: 'tmp' }, 400, 'cwd must be an absolute path'],
    ['an unknown stdin field', { stdin: { value: 'x', eof: true } }, 400, 'stdin: unknown field "eof"'],
    ['an unknown networking field', { networking: { enabled: true, dns: '1.1.1.1' } }, 400, 'networking: unknown field "dns"'],
    ['a string uid', { uid: '1000' }, 400, 'uid must be an integer from 0 to 65535'],
  ]
  it.each(cases)('refuses %s, naming the field', async (_name, body, status, error) => {
    const filled = JSON.parse(JSON.stringify(body).replaceAll('SHA', upload.sha256).replaceAll('UUID', upload.uuid)) as Record<string, unknown>
    expect(await refusedSpawn(filled)).toEqual({ status, error: error.replaceAll('SHA', upload.sha256) })
  })

  it('accepts every documented field, explicit nulls, and the 0o mode form', async () => {
    const op = await spawn(base, {
      command: 'stat -c %a /etc/app.conf; echo "$GREETING"',
      shell: true,
      args: null,
      env: { GREETING: 'hi' },
      preserve_env: false,
      cwd: null,
      uid: 0,
      gid: null,
      hostname: 'linuxkit',
      disposable: true,
      timeout: 30,
      truncate_output_at: 65536,
      stdin: null,
      files: { '/etc/app.conf': { uuid: upload.uuid, mode: '0o640', uid: 0, gid: 0 } },
      resources_limits: { max_layer_bytes: 1 << 30 },
      networking: { enabled: false },
    })
    const record = await waitTerminal(base, op)
    expect(record.metadata.result.stdout.value).toBe('640\nhi\n')
  })
})

describe('placing files', () => {
  it('creates missing parents root:root 0755 and gives the file its own owner and mode', async () => {
    const op = await spawn(base, {
      command: 'stat -c "%n %u:%g %a" /opt /opt/deep /opt/deep/dir /opt/deep/dir/file /home/app/conf; cat /opt/deep/dir/file',
      shell: true,
      files: {
        '/opt/deep/dir/file': { uuid: upload.uuid, mode: '0640', uid: 1000, gid: 1000 },
        '/home/app/conf': { uuid: upload.uuid, mode: '0600', uid: 1000, gid: 1000 },
      },
    })
    const record = await waitTerminal(base, op)
    expect(record.metadata.result.stdout.value).toBe(
      ['/opt 0:0 755', '/opt/deep 0:0 755', '/opt/deep/dir 0:0 755', '/opt/deep/dir/file 1000:1000 640', '/home/app/conf 1000:1000 600', 'payload', ''].join('\n'),
    )
  })

  it('places through symlinks inside the image, never out of it', async () => {
    // /bin/sh is a symlink to /bin/busybox: a file placed at /bin/sh replaces the link, not busybox.
    const op = await spawn(base, {
      command: '/bin/busybox',
      args: ['sh', '-c', 'ls -l /bin/sh | cut -c1; cat /bin/sh'],
      files: { '/bin/sh': { uuid: upload.uuid, mode: '0755' } },
      disposable: true,
    })
    const record = await waitTerminal(base, op)
    expect(record.metadata.result.stdout.value).toBe('-\npayload\n')
  })
})

describe('the working directory', () => {
  it('is not created when missing: FAILED before anything runs, naming it, with no result image', async () => {
    const op = await spawn(base, { command: 'pwd', shell: true, cwd: '/no/such/dir' })
    const record = await waitTerminal(base, op)
    expect(record).toMatchObject({
      status: 'FAILED',
      error: 'working directory /no/such/dir: no such file or directory',
      result_image_uuid: null,
      result: { image: null },
    })
    const log = parseSse((await readStream(base, `/v1/operations/${op}/events`)).text).frames
    expect(log.map((frame) => frame.event)).toEqual(['init', 'completion'])
    expect(JSON.parse(log[1]?.data ?? '{}').data).toMatchObject({ status: 'FAILED', error: 'working directory /no/such/dir: no such file or directory' })
  })

  it('must be a directory', async () => {
    const record = await waitTerminal(base, await spawn(base, { command: 'pwd', shell: true, cwd: '/etc/passwd' }))
    expect(record).toMatchObject({ status: 'FAILED', error: 'working directory /etc/passwd: not a directory' })
  })

  it('exists when a placed file creates it, and is followed through symlinks inside the image', async () => {
    const placed = await waitTerminal(base, await spawn(base, { command: 'pwd', shell: true, cwd: '/app', files: { '/app/x': { uuid: upload.uuid } } }))
    expect(placed.metadata.result.stdout.value).toBe('/app\n')
    const linked = await waitTerminal(base, await spawn(base, { command: 'pwd -P', shell: true, cwd: '/home/../home/app/.' }))
    expect(linked.metadata.result.stdout.value).toBe('/home/app\n')
  })
})
