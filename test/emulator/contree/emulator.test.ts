import { createHash, randomUUID } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { createGunzip } from 'node:zlib'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { staticBusybox } from '../test-images.ts'
import { startContreeEmulator, type ContreeEmulator } from './index.ts'
import { call, decodeRepr, parseSse, readStream, spawn, waitStatus, waitTerminal } from './test-client.ts'

let emu: ContreeEmulator
let base: string

beforeAll(async () => {
  emu = await startContreeEmulator({ keepaliveMs: 50, log: () => undefined })
  base = emu.url
})
afterAll(async () => {
  await emu.close()
})

/** Pids of non-zombie processes in a process group (zombies await a reaper outside our control). */
function livingGroupMembers(pgid: number): number[] {
  const alive: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') alive.push(Number(entry))
    } catch {
      // The process went away while we looked.
    }
  }
  return alive
}

function events(text: string) {
  return parseSse(text).frames.map((frame) => ({ frame, event: JSON.parse(frame.data) }))
}

describe('ConTree emulator: API surface', () => {
  it('answers whoami gzip-compressed with a request id', async () => {
    const res = await call(base, 'GET', '/v1/whoami')
    expect(res.status).toBe(200)
    expect(res.headers['content-encoding']).toBe('gzip')
    expect(res.headers['x-request-id']).toBeTruthy()
    expect(res.json()).toMatchObject({ token_expiration: null, permissions: { list: true, spawn: true } })
  })

  it('answers unknown routes and bad parameters with Error bodies', async () => {
    const unknown = await call(base, 'GET', '/v1/nope')
    expect(unknown.status).toBe(404)
    expect(unknown.json()).toEqual({ error: 'no route for GET /v1/nope', status: 404 })
    const badLimit = await call(base, 'GET', '/v1/images?limit=0')
    expect(badLimit.status).toBe(400)
    expect(badLimit.json().error).toBe('limit must be between 1 and 1000')
    expect((await call(base, 'GET', '/v1/images?limit=1001')).status).toBe(400)
  })

  it('resolves tags through /v1/inspect/ with a relative redirect', async () => {
    const res = await call(base, 'GET', '/v1/inspect/?tag=busybox:latest')
    expect(res.status).toBe(302)
    const uuid = String(res.headers.location).replace(/\/$/, '')
    expect(res.headers.location).toBe(`${uuid}/`)
    const image = await call(base, 'GET', `/v1/inspect/${uuid}/`)
    expect(image.json()).toMatchObject({ uuid, tag: 'busybox:latest' })
    expect((await call(base, 'GET', '/v1/inspect/')).status).toBe(400)
    expect((await call(base, 'GET', '/v1/inspect/?tag=missing:tag')).status).toBe(404)
    expect((await call(base, 'GET', '/v1/inspect/not-an-image/')).status).toBe(404)
  })

  it('lists images by tag prefix; a tag another image holds is refused (409) until deleted there', async () => {
    const a = await emu.seedImage({ tag: 'prefix-test/a:1' })
    const b = await emu.seedImage({ tag: 'prefix-test/b:1' })
    const listed = (await call(base, 'GET', '/v1/images?tag=prefix-test/')).json().images.map((i: any) => i.uuid)
    expect(listed.sort()).toEqual([a, b].sort())
    const refused = await call(base, 'PATCH', `/v1/images/${b}/tag`, { body: { tag: 'prefix-test/a:1' } })
    expect(refused.status).toBe(409)
    expect(refused.json().error).toContain(a)
    expect(emu.images().find((i) => i.uuid === a)?.tag).toBe('prefix-test/a:1')
    expect(emu.images().find((i) => i.uuid === b)?.tag).toBe('prefix-test/b:1')
    expect((await call(base, 'DELETE', `/v1/images/${a}/tag`)).status).toBe(204)
    const patched = await call(base, 'PATCH', `/v1/images/${b}/tag`, { body: { tag: 'prefix-test/a:1' } })
    expect(patched.status).toBe(200)
    expect(patched.json()).toMatchObject({ uuid: b, tag: 'prefix-test/a:1' })
    expect(emu.images().find((i) => i.uuid === a)?.tag).toBeNull()
    // Re-tagging the holder with its own tag is fine.
    expect((await call(base, 'PATCH', `/v1/images/${b}/tag`, { body: { tag: 'prefix-test/a:1' } })).status).toBe(200)
    expect((await call(base, 'DELETE', `/v1/images/${b}/tag`)).status).toBe(204)
    expect(emu.images().find((i) => i.uuid === b)?.tag).toBeNull()
  })

  it('stores files by sha256, deduplicates and answers probes', async () => {
    const first = await call(base, 'POST', '/v1/files', {
      body: Buffer.from('hello file'),
      headers: { 'content-type': 'application/octet-stream' },
    })
    expect(first.status).toBe(201)
    const record = first.json()
    expect(record.sha256).toBe(createHash('sha256').update('hello file').digest('hex'))
    expect(record.size).toBe(10)
    // A chunked upload of the same bytes returns the existing record.
    const chunked = await call(base, 'POST', '/v1/files', {
      body: Readable.from([Buffer.from('hello '), Buffer.from('file')]),
    })
    expect(chunked.json()).toEqual(record)
    expect((await call(base, 'GET', `/v1/files/${record.sha256}`)).json()).toMatchObject(record)
    expect((await call(base, 'HEAD', `/v1/files/${record.sha256}`)).status).toBe(200)
    expect((await call(base, 'HEAD', `/v1/files/${'0'.repeat(64)}`)).status).toBe(404)
    expect((await call(base, 'GET', `/v1/files/${'0'.repeat(64)}`)).status).toBe(404)
    expect((await call(base, 'GET', `/v1/files?sha256=${record.sha256}`)).json()).toEqual(record)
    expect((await call(base, 'HEAD', `/v1/files?uuid=${record.uuid}`)).status).toBe(200)
    expect((await call(base, 'HEAD', '/v1/files?uuid=nope')).status).toBe(404)
    expect((await call(base, 'GET', '/v1/files')).json().files.map((f: any) => f.uuid)).toContain(record.uuid)
  })

  it('requires the token and project in strict mode', async () => {
    const strict = await startContreeEmulator({ token: 's3cret', project: 'p1', log: () => undefined })
    try {
      const none = await call(strict.url, 'GET', '/v1/whoami')
      expect(none.status).toBe(401)
      expect(none.json().status).toBe(401)
      const noProject = await call(strict.url, 'GET', '/v1/whoami', { headers: { authorization: 'Bearer s3cret' } })
      expect(noProject.status).toBe(403)
      const ok = await call(strict.url, 'GET', '/v1/whoami', { headers: { authorization: 'Bearer s3cret', project: 'p1' } })
      expect(ok.status).toBe(200)
      expect(strict.requests[0]?.headers.authorization).toBeUndefined()
      expect(strict.requests[1]?.headers.authorization).toBe('<redacted>')
    } finally {
      await strict.close()
    }
  })

  it('can serve identity bodies when gzip is off', async () => {
    const plain = await startContreeEmulator({ gzip: false, log: () => undefined })
    try {
      const res = await call(plain.url, 'GET', '/v1/whoami')
      expect(res.headers['content-encoding']).toBeUndefined()
      expect(res.json().permissions.list).toBe(true)
    } finally {
      await plain.close()
    }
  })
})

describe('ConTree emulator: instances', () => {
  it('runs a command: SUCCESS with exit 3, captured output and a well-formed event log', async () => {
    const op = await spawn(base, { command: "echo hi; echo err >&2; printf '\\001\\002'; exit 3", shell: true })
    const record = await waitTerminal(base, op)
    expect(record).toMatchObject({ uuid: op, kind: 'instance', status: 'SUCCESS', error: null })
    expect(record.metadata.result.state).toMatchObject({ exit_code: 3, signal: -1, timed_out: false })
    expect(decodeRepr(record.metadata.result.stdout)).toEqual(Buffer.from('hi\n\x01\x02', 'latin1'))
    expect(record.metadata.result.stdout.encoding).toBe('base64')
    expect(record.metadata.result.stderr).toEqual({ value: 'err\n', encoding: 'ascii', truncated: false })
    expect(record.result_image_uuid).toBeTruthy()
    expect(record.result.image).toBe(record.result_image_uuid)
    expect(typeof record.duration).toBe('number')

    const stream = await readStream(base, `/v1/operations/${op}/events`)
    expect(stream.headers['content-type']).toBe('text/event-stream')
    const log = events(stream.text)
    expect(log.map(({ frame }) => frame.id)).toEqual(log.map((_, i) => i))
    for (const { frame, event } of log) {
      expect(event.id).toBe(frame.id)
      expect(event.type).toBe(frame.event)
    }
    const types = log.map(({ event }) => event.type)
    expect(types[0]).toBe('init')
    expect(types[1]).toBe('spawn')
    expect(types.slice(-2)).toEqual(['exit', 'completion'])
    expect(log[0]?.event.spid).toBe(0)
    expect(log[1]?.event.data).toMatchObject({ command: '/bin/sh', args: ['-c', expect.any(String)], shell: true })
    const out = log.filter(({ event }) => event.type === 'stdout').map(({ event }) => event.data)
    expect(Buffer.concat(out.map(decodeRepr))).toEqual(Buffer.from('hi\n\x01\x02', 'latin1'))
    // The ascii/base64 rule, per chunk: printable text stays ascii, anything else is base64.
    for (const data of out) {
      const printable = /^[\x20-\x7e\t\n\r]*$/.test(decodeRepr(data).toString('latin1'))
      expect(data.encoding).toBe(printable ? 'ascii' : 'base64')
    }
    expect(out.some((d) => d.encoding === 'base64')).toBe(true)
    expect(log.at(-2)?.event.data).toMatchObject({ code: 3, signal: -1, timed_out: false })
    expect(log.at(-1)?.event).toMatchObject({
      spid: 0,
      data: { status: 'SUCCESS', result_image_uuid: record.result_image_uuid, error: null },
    })
  })

  it('follows a live stream and resumes after Last-Event-Id, then replays the retained log', async () => {
    const op = await spawn(base, { command: 'echo a; sleep 0.3; echo b', shell: true })
    const followed = await readStream(base, `/v1/operations/${op}/events?follow=1`, { 'last-event-id': '1' })
    const ids = events(followed.text).map(({ event }) => event.id)
    expect(ids[0]).toBe(2)
    expect(events(followed.text).at(-1)?.event.type).toBe('completion')
    expect(followed.headers.connection).toBe('close')

    const replay = events((await readStream(base, `/v1/operations/${op}/events`)).text)
    expect(replay.map(({ event }) => event.id)).toEqual(replay.map((_, i) => i))
    const stdout = replay.filter(({ event }) => event.type === 'stdout').map(({ event }) => event.data.value)
    expect(stdout.join('')).toBe('a\nb\n')
    const onlyProcess = events((await readStream(base, `/v1/operations/${op}/events?spid=1`)).text)
    expect(onlyProcess.every(({ event }) => event.spid === 1)).toBe(true)
    expect(onlyProcess.some(({ event }) => event.type === 'completion')).toBe(false)
  })

  it('sends keepalive comments on an idle follow stream', async () => {
    const op = await spawn(base, { command: 'sleep 0.4', shell: true })
    const stream = await readStream(base, `/v1/operations/${op}/events?follow=1`)
    expect(parseSse(stream.text).comments).toContain(': keepalive')
  })

  it('makes the first frame of a running operation decodable before it ends (gzip sync flush)', async () => {
    const op = await spawn(base, { command: 'echo first; sleep 30', shell: true })
    const res = await request(`${base}/v1/operations/${op}/events?follow=1`, { headers: { accept: 'text/event-stream' } })
    expect(res.headers['content-encoding']).toBe('gzip')
    // Decode chunk by chunk, as a streaming client would, and stop at the first output frame.
    const gunzip = createGunzip()
    let text = ''
    gunzip.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')))
    for await (const chunk of res.body) {
      gunzip.write(chunk)
      await new Promise<void>((resolve) => gunzip.flush(() => resolve()))
      if (text.includes('"value":"first\\n"')) break
    }
    gunzip.destroy()
    // Keepalive comments may come first while the operation is still PENDING; the first frame is init.
    expect(parseSse(text).frames[0]).toMatchObject({ id: 0, event: 'init' })
    expect(text.replace(/^(: keepalive\n\n)*/, '').startsWith('id: 0\nevent: init\n')).toBe(true)
    expect(emu.operations().find((o) => o.uuid === op)?.status).toBe('EXECUTING')
    expect((await call(base, 'DELETE', `/v1/operations/${op}`)).status).toBe(202)
    expect((await waitTerminal(base, op)).status).toBe('CANCELLED')
  })

  it('lets a later spawn on the result image see files written by the earlier one', async () => {
    const first = await spawn(base, { command: 'mkdir -p /data && echo persisted > /data/note.txt', shell: true })
    const image = (await waitTerminal(base, first)).result_image_uuid
    // The parent image stays untouched.
    const parent = await spawn(base, { command: 'test ! -e /data/note.txt', shell: true })
    expect((await waitTerminal(base, parent)).metadata.result.state.exit_code).toBe(0)
    const second = await spawn(base, { image, command: 'cat', args: ['/data/note.txt'] })
    const record = await waitTerminal(base, second)
    expect(record.metadata.result.stdout.value).toBe('persisted\n')
    expect(record.image_uuid).toBe(image)
  })

  it('runs chrooted in the instance root, and mount points it had to make are gone afterwards', async () => {
    // An image with nothing but busybox: no /dev, no /proc of its own.
    const bare = await emu.seedImage({
      files: {
        'bin/busybox': { content: staticBusybox().bytes, mode: 0o755 },
        'bin/sh': { type: 'symlink', target: 'busybox' },
        'bin/cat': { type: 'symlink', target: 'busybox' },
        'etc/hostname': 'bare\n',
      },
    })
    const note = (await call(base, 'POST', '/v1/files', { body: 'note\n' })).json()
    const op = await spawn(base, {
      image: bare,
      command: 'pwd; cat /etc/hostname; echo gone > /dev/null && echo dev-null-works',
      shell: true,
      cwd: '/work/dir',
      env: { PATH: '/bin' },
      files: { '/work/dir/note.txt': { uuid: note.uuid } },
    })
    const record = await waitTerminal(base, op)
    expect(record.metadata.result.stdout.value).toBe('/work/dir\nbare\ndev-null-works\n')
    const image = emu.images().find((i) => i.uuid === record.result_image_uuid)
    const { readdir } = await import('node:fs/promises')
    expect((await readdir(image!.dir)).sort()).toEqual(['bin', 'etc', 'work'])
  })

  it('injects uploaded files with their mode before the command runs', async () => {
    const file = (await call(base, 'POST', '/v1/files', { body: '#!/bin/sh\necho from script\n' })).json()
    const op = await spawn(base, {
      command: '/opt/app/run.sh',
      files: { '/opt/app/run.sh': { uuid: file.uuid, mode: '0o755', uid: 0, gid: 0 } },
      disposable: true,
    })
    const record = await waitTerminal(base, op)
    expect(record.metadata.result.stdout.value).toBe('from script\n')
    expect(record.result_image_uuid).toBeNull()
    const missing = await call(base, 'POST', '/v1/instances', {
      body: { image: 'tag:busybox:latest', command: 'true', files: { '/x': { uuid: randomUUID() } } },
    })
    expect(missing.status).toBe(404)
    const notAUuid = await call(base, 'POST', '/v1/instances', {
      body: { image: 'tag:busybox:latest', command: 'true', files: { '/x': { uuid: 'nope' } } },
    })
    expect(notAUuid.status).toBe(400)
    expect(notAUuid.json().error).toContain('files["/x"].uuid')
  })

  it('times out: SUCCESS with timed_out, exit -1 and signal 9', async () => {
    const op = await spawn(base, { command: 'sleep 20', shell: true, timeout: 1 })
    const record = await waitTerminal(base, op)
    expect(record.status).toBe('SUCCESS')
    expect(record.metadata.result.state).toMatchObject({ timed_out: true, exit_code: -1, signal: 9 })
    const log = events((await readStream(base, `/v1/operations/${op}/events`)).text)
    expect(log.find(({ event }) => event.type === 'exit')?.event.data).toMatchObject({ timed_out: true, signal: 9 })
  })

  it('cancels: 202, CANCELLED, the process is gone, then 409; unknown ids 404', async () => {
    const op = await spawn(base, { command: 'sleep 30', shell: true })
    await waitStatus(base, op, 'EXECUTING')
    while (!emu.operations().find((o) => o.uuid === op)?.pid) await new Promise((r) => setTimeout(r, 10))
    const pid = emu.operations().find((o) => o.uuid === op)?.pid as number
    const cancel = await call(base, 'DELETE', `/v1/operations/${op}`)
    expect(cancel.status).toBe(202)
    expect(cancel.body.length).toBe(0)
    const record = await waitTerminal(base, op)
    expect(record.status).toBe('CANCELLED')
    expect(record.result_image_uuid).toBeNull()
    expect(livingGroupMembers(pid)).toEqual([])
    const again = await call(base, 'DELETE', `/v1/operations/${op}`)
    expect(again.status).toBe(409)
    expect(again.json().error).toBe('operation is not cancellable')
    expect((await call(base, 'DELETE', '/v1/operations/unknown')).status).toBe(404)
    const log = events((await readStream(base, `/v1/operations/${op}/events`)).text)
    expect(log.at(-1)?.event.data.status).toBe('CANCELLED')
  })

  it('cuts each stream at truncate_output_at: the rest is neither streamed nor kept, and one truncated event says so', async () => {
    const op = await spawn(base, {
      command: 'head -c 100000 /dev/zero | tr "\\0" x; echo short >&2',
      shell: true,
      truncate_output_at: 10,
    })
    const record = await waitTerminal(base, op)
    expect(record.metadata.result.stdout).toEqual({ value: 'x'.repeat(10), encoding: 'ascii', truncated: true })
    expect(record.metadata.result.stderr).toEqual({ value: 'short\n', encoding: 'ascii', truncated: false })
    const log = events((await readStream(base, `/v1/operations/${op}/events`)).text)
    const truncated = log.filter(({ event }) => event.type === 'truncated')
    expect(truncated).toHaveLength(1)
    expect(truncated[0]?.event).toMatchObject({ spid: 1, data: { stream: 'stdout', bytes_emitted: 10, bytes_dropped: 99990 } })
    const types = log.map(({ event }) => event.type)
    expect(types.indexOf('truncated')).toBeLessThan(types.indexOf('exit'))
    const streamed = log.filter(({ event }) => event.type === 'stdout').map(({ event }) => decodeRepr(event.data))
    expect(Buffer.concat(streamed).toString()).toBe('x'.repeat(10))
  })

  it('caps at 1 MiB when truncate_output_at is absent', async () => {
    const op = await spawn(base, { command: 'head -c 1100000 /dev/zero', shell: true })
    const record = await waitTerminal(base, op)
    expect(decodeRepr(record.metadata.result.stdout).length).toBe(1048576)
    expect(record.metadata.result.stdout.truncated).toBe(true)
    const log = events((await readStream(base, `/v1/operations/${op}/events`)).text)
    const streamed = log.filter(({ event }) => event.type === 'stdout').map(({ event }) => decodeRepr(event.data))
    expect(Buffer.concat(streamed).length).toBe(1048576)
    expect(streamed.every((chunk) => chunk.length <= 64 * 1024)).toBe(true)
    expect(log.find(({ event }) => event.type === 'truncated')?.event.data).toEqual({ stream: 'stdout', bytes_emitted: 1048576, bytes_dropped: 1100000 - 1048576 })
  })

  it('lists operations as a bare array with filters', async () => {
    const res = await call(base, 'GET', '/v1/operations?status=CANCELLED&kind=instance')
    const ops = res.json()
    expect(Array.isArray(ops)).toBe(true)
    expect(ops.length).toBeGreaterThan(0)
    expect(ops.every((o: any) => o.status === 'CANCELLED' && o.kind === 'instance')).toBe(true)
  })
})
