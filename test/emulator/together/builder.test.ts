import { randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildTar, type TarFiles } from '../tar-writer.ts'
import { startTogetherEmulator, type TogetherEmulator } from './index.ts'
import { call, contextArchive, followBuild, readStream, sseData, submitBuild, waitUntil } from './test-client.ts'

let emu: TogetherEmulator

beforeAll(async () => {
  emu = await startTogetherEmulator({ keepaliveMs: 50, log: () => undefined })
})
afterAll(async () => {
  await emu.close()
})
beforeEach(() => emu.reset())

const builder = (method: 'GET' | 'DELETE', path: string) => call(`${emu.builderUrl}${path}`, method, { token: emu.apiKey })

/** A tar whose first entry is renamed after the fact, to make archives no honest writer would produce. */
function archiveWithEntryNamed(name: string): Uint8Array {
  const tar = Buffer.from(buildTar({ Dockerfile: 'FROM busybox:latest\n', placeholder: 'x' }))
  // Entries are sorted: Dockerfile (block 0), then placeholder (header at block 2).
  const header = tar.subarray(1024, 1536)
  header.fill(0, 0, 100)
  header.write(name, 0, 'utf8')
  header.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1')
  return gzipSync(tar)
}

async function build(files: TarFiles, fields: Record<string, string> = {}) {
  const submitted = await submitBuild(emu, contextArchive(files), fields)
  expect(submitted.status).toBe(202)
  const buildId = submitted.json().build_id as string
  return { buildId, ...(await followBuild(emu, buildId)) }
}

describe('Together emulator builder: builds', () => {
  it('runs RUN and COPY of a real tar.gz context, logs BuildKit-style, ends with done and an image_ref', async () => {
    const runsBefore = emu.counts().runStepsExecuted
    const { buildId, lines, terminal } = await build(
      {
        Dockerfile: 'FROM busybox:latest\nARG WHO=nobody\nENV GREETING=hello\nWORKDIR /app\nCOPY data/ ./data/\nRUN echo "$GREETING $WHO" && cat data/note.txt && echo to-stderr >&2\nCMD ["sh"]\n',
        'data/note.txt': 'from the context\n',
      },
      { image_name: 'demo:v2', build_args: JSON.stringify({ WHO: 'tester' }) },
    )
    expect(terminal).toEqual({ done: true })
    expect(lines).toContain('#1 [internal] load build definition from Dockerfile')
    expect(lines.some((line) => /^#\d+ \[3\/4\] COPY data\/ \.\/data\/$/.test(line))).toBe(true)
    const run = lines.findIndex((line) => /^#\d+ \[4\/4\] RUN echo/.test(line))
    const vertex = (lines[run] as string).split(' ')[0]
    const output = lines.filter((line) => line.startsWith(`${vertex} `) && /^#\d+ \d+\.\d{3} /.test(line)).map((line) => line.replace(/^#\d+ \S+ /, ''))
    // stdout keeps its order; the stderr line may land anywhere among it (two pipes).
    expect(output.filter((line) => line !== 'to-stderr')).toEqual(['hello tester', 'from the context'])
    expect(output).toContain('to-stderr')
    expect(emu.counts().runStepsExecuted).toBe(runsBefore + 1)

    const status = await builder('GET', `/builds/${buildId}`)
    expect(status.status).toBe(200)
    expect(status.json()).toEqual({
      build_id: buildId,
      status: 'succeeded',
      image_ref: 'registry.together.emulator/obzg62s7mvwxk3dborxxe/demo:v2',
    })
  })

  it('colours its progress lines and carries no event ids', async () => {
    const { buildId } = await build({ Dockerfile: 'FROM busybox:latest\nRUN true\n' })
    const stream = await readStream(`${emu.builderUrl}/builds/${buildId}/logs`, emu.apiKey)
    expect(stream.headers['content-type']).toBe('text/event-stream')
    expect(stream.text).toContain('\x1b[34m#')
    expect(stream.text).not.toMatch(/^id:/m)
    expect(sseData(stream.text).at(-1)).toBe('{"done":true}')
  })

  it('replays the whole log from the start on every connect', async () => {
    const { buildId, lines } = await build({ Dockerfile: 'FROM busybox:latest\nRUN echo once\n' })
    const again = await followBuild(emu, buildId)
    expect(again.lines).toEqual(lines)
    expect(again.terminal).toEqual({ done: true })
  })

  it('defaults the tag to latest and the Dockerfile to the context root; honours a dockerfile path', async () => {
    const first = await build({ Dockerfile: 'FROM busybox:latest\n' }, { image_name: 'plain', dockerfile: undefined as unknown as string })
    expect((await builder('GET', `/builds/${first.buildId}`)).json().image_ref).toMatch(/\/plain:latest$/)
    const nested = await build({ 'docker/Dockerfile.dev': 'FROM busybox:latest\nRUN echo nested\n' }, { dockerfile: 'docker/Dockerfile.dev' })
    expect(nested.terminal).toEqual({ done: true })
    const missing = await build({ Dockerfile: 'FROM busybox:latest\n' }, { dockerfile: 'nope/Dockerfile' })
    expect(missing.terminal).toEqual({ error: 'failed to solve: failed to read dockerfile: open nope/Dockerfile: no such file or directory' })
  })

  it('fails the build with the process and its exit code when a RUN fails', async () => {
    const { buildId, lines, terminal } = await build({ Dockerfile: 'FROM busybox:latest\nRUN echo before && exit 3\nRUN echo never\n' })
    expect(terminal).toEqual({ error: 'failed to solve: process "/bin/sh -c echo before && exit 3" did not complete successfully: exit code: 3' })
    expect(lines.some((line) => line.endsWith(' before'))).toBe(true)
    expect(lines.some((line) => line.includes('never'))).toBe(false)
    expect((await builder('GET', `/builds/${buildId}`)).json()).toMatchObject({ status: 'failed' })
    expect((await builder('GET', `/builds/${buildId}`)).json().image_ref).toBeUndefined()
  })

  it('builds FROM an image it built, and multi-stage with COPY --from', async () => {
    const base = await build({ Dockerfile: 'FROM busybox:latest\nRUN mkdir -p /opt && echo base > /opt/base.txt\n' }, { image_name: 'base:1' })
    expect(base.terminal).toEqual({ done: true })
    const baseRef = (await builder('GET', `/builds/${base.buildId}`)).json().image_ref as string
    const derived = await build({
      Dockerfile: `FROM ${baseRef} AS builder\nRUN echo built > /opt/artifact\nFROM busybox:latest\nCOPY --from=builder /opt/ /copied/\nRUN cat /copied/base.txt /copied/artifact\n`,
    })
    expect(derived.terminal).toEqual({ done: true })
    const outputs = derived.lines.filter((line) => /^#\d+ \d+\.\d{3} /.test(line)).map((line) => line.replace(/^#\d+ \S+ /, ''))
    expect(outputs).toEqual(['base', 'built'])
    expect(derived.lines.some((line) => /\[builder 2\/2\] RUN echo built/.test(line))).toBe(true)
  })

  it('runs RUN as the USER of the Dockerfile and warns about unused build args', async () => {
    const { lines, terminal } = await build(
      { Dockerfile: 'FROM busybox:latest\nUSER app\nRUN id -u\nUSER 0:0\nRUN id -u\n' },
      { build_args: JSON.stringify({ UNUSED: 'x' }) },
    )
    expect(terminal).toEqual({ done: true })
    const ids = lines.filter((line) => /^#\d+ \d+\.\d{3} \d+$/.test(line)).map((line) => line.split(' ').at(-1))
    expect(ids).toEqual(['1000', '0'])
    expect(lines).toContain('[Warning] One or more build-args [UNUSED] were not consumed')
  })

  it('gives what it writes real owners: COPY --chown, WORKDIR made as the USER of that point, RUN as that user', async () => {
    const { lines, terminal } = await build({
      Dockerfile: [
        'FROM busybox:latest',
        'USER app',
        'WORKDIR /home/app/work',
        'RUN touch made-by-run',
        'USER root',
        'COPY --chown=app:app note.txt /srv/note.txt',
        'COPY plain.txt /srv/plain.txt',
        'RUN stat -c "%U:%G %a %n" /home/app/work /home/app/work/made-by-run /srv/note.txt /srv/plain.txt',
        '',
      ].join('\n'),
      'note.txt': 'n\n',
      'plain.txt': 'p\n',
    })
    expect(terminal).toEqual({ done: true })
    const outputs = lines.filter((line) => /^#\d+ \d+\.\d{3} /.test(line)).map((line) => line.replace(/^#\d+ \S+ /, ''))
    expect(outputs).toEqual(['app:app 755 /home/app/work', 'app:app 644 /home/app/work/made-by-run', 'app:app 644 /srv/note.txt', 'root:root 644 /srv/plain.txt'])
  })

  it('refuses instructions it does not know and ADD of a URL', async () => {
    expect((await build({ Dockerfile: 'FROM busybox:latest\nFROBNICATE x\n' })).terminal.error).toContain('unknown instruction: FROBNICATE')
    expect((await build({ Dockerfile: 'FROM busybox:latest\nADD https://example.com/x /x\n' })).terminal.error).toContain('ADD from a URL')
    expect((await build({ Dockerfile: 'FROM busybox:latest\nCOPY ../outside /x\n' })).terminal.error).toContain('forbidden path outside the build context')
    expect((await build({ Dockerfile: 'FROM busybox:latest\nCOPY missing.txt /x\n' })).terminal.error).toContain('"/missing.txt": not found')
    expect((await build({ Dockerfile: 'FROM not-seeded:1\n' })).terminal.error).toContain('docker.io/library/not-seeded:1: not found')
  })
})

describe('Together emulator builder: layer cache', () => {
  const dockerfile = 'FROM busybox:latest\nCOPY app.txt /app.txt\nRUN cat /app.txt > /copy.txt\n'

  it('does not rerun an unchanged step of a build with the same cache_key', async () => {
    const first = await build({ Dockerfile: dockerfile, 'app.txt': 'v1\n' }, { cache_key: 'team/app' })
    expect(first.terminal).toEqual({ done: true })
    const runs = emu.counts().runStepsExecuted
    const again = await build({ Dockerfile: dockerfile, 'app.txt': 'v1\n' }, { cache_key: 'team/app', image_name: 'other-name:7' })
    expect(again.terminal).toEqual({ done: true })
    expect(emu.counts().runStepsExecuted).toBe(runs)
    expect(again.lines.filter((line) => /^#\d+ CACHED$/.test(line))).toHaveLength(2)
    const view = emu.builds().find((b) => b.id === again.buildId)
    expect(view).toMatchObject({ runsExecuted: 0, stepsCached: 2, cacheKey: 'team/app' })
  })

  it('reruns when the context changes, and shares nothing across cache keys', async () => {
    await build({ Dockerfile: dockerfile, 'app.txt': 'v1\n' }, { cache_key: 'team/app2' })
    const runs = emu.counts().runStepsExecuted
    await build({ Dockerfile: dockerfile, 'app.txt': 'v2\n' }, { cache_key: 'team/app2' })
    expect(emu.counts().runStepsExecuted).toBe(runs + 1)
    await build({ Dockerfile: dockerfile, 'app.txt': 'v2\n' }, { cache_key: 'someone-else' })
    expect(emu.counts().runStepsExecuted).toBe(runs + 2)
  })

  it('defaults the cache key to the image name without its tag (so random names never share layers)', async () => {
    await build({ Dockerfile: dockerfile, 'app.txt': 'v1\n' }, { image_name: 'image-aaa:1' })
    const runs = emu.counts().runStepsExecuted
    await build({ Dockerfile: dockerfile, 'app.txt': 'v1\n' }, { image_name: 'image-aaa:2' })
    expect(emu.counts().runStepsExecuted).toBe(runs)
    await build({ Dockerfile: dockerfile, 'app.txt': 'v1\n' }, { image_name: 'image-bbb:1' })
    expect(emu.counts().runStepsExecuted).toBe(runs + 1)
    expect(emu.builds().at(-1)?.cacheKey).toBe('image-bbb')
  })
})

describe('Together emulator builder: cancel', () => {
  it('DELETE kills the running RUN process, ends the log with an error, and is idempotent', async () => {
    const submitted = await submitBuild(emu, contextArchive({ Dockerfile: 'FROM busybox:latest\nRUN echo started && sleep 300\n' }))
    const buildId = submitted.json().build_id as string
    await waitUntil(() => emu.builds().find((b) => b.id === buildId)?.log.some((line) => line.endsWith(' started')) ?? false, 'the RUN to start')
    expect(emu.counts().processesAlive).toBeGreaterThan(0)
    expect((await builder('DELETE', `/builds/${buildId}`)).status).toBe(204)
    const { terminal } = await followBuild(emu, buildId)
    expect(terminal).toEqual({ error: 'build cancelled' })
    expect((await builder('GET', `/builds/${buildId}`)).json()).toEqual({ build_id: buildId, status: 'cancelled', error: 'build cancelled' })
    await waitUntil(() => emu.counts().processesAlive === 0, 'the RUN process to die')
    expect((await builder('DELETE', `/builds/${buildId}`)).status).toBe(204)
    expect(emu.counts().builds.cancelled).toBe(1)
    expect((await builder('DELETE', '/builds/build-missing')).status).toBe(404)
  })
})

describe('Together emulator builder: what it refuses', () => {
  it('fails a build whose context has an absolute path or a .. entry', async () => {
    for (const name of ['/etc/evil', 'a/../../evil']) {
      const submitted = await submitBuild(emu, archiveWithEntryNamed(name))
      expect(submitted.status).toBe(202)
      const { terminal } = await followBuild(emu, submitted.json().build_id)
      expect(terminal.error).toMatch(/absolute path|escapes the context/)
    }
    const notGzip = await submitBuild(emu, new TextEncoder().encode('plain text'))
    expect((await followBuild(emu, notGzip.json().build_id)).terminal.error).toContain('not a valid gzip stream')
  })

  it('refuses a submit without the context part, or with bad fields', async () => {
    const context = contextArchive({ Dockerfile: 'FROM busybox:latest\n' })
    const submittedBefore = emu.counts().builds.submitted
    const cases: Array<[Uint8Array | null, Record<string, string>, string]> = [
      [null, {}, 'the "context" file part is required'],
      [context, { cache_key: 'App' }, 'cache_key may only contain'],
      [context, { cache_key: 'app:tag' }, 'cache_key may only contain'],
      [context, { cache_key: 'a//b' }, 'empty path segments'],
      [context, { cache_key: 'x'.repeat(256) }, 'at most 255'],
      [context, { build_args: '{"A":1}' }, 'build_args must be a JSON object of strings'],
      [context, { build_args: '["A"]' }, 'build_args must be a JSON object of strings'],
      [context, { nydus_convert: 'yes' }, 'nydus_convert'],
      [context, { image_name: 'ns/app:1' }, 'namespace is derived from the token'],
      [context, { image_name: 'App' }, 'not a valid image name'],
      [context, { dockerfile: '../Dockerfile' }, 'relative to the context root'],
      [context, { platform: 'linux/amd64' }, 'unknown form field "platform"'],
    ]
    for (const [archive, fields, message] of cases) {
      const res = await submitBuild(emu, archive, fields)
      expect(res.status, JSON.stringify(fields)).toBe(400)
      expect(res.json().error).toContain(message)
    }
    const plainBody = await call(`${emu.builderUrl}/builds`, 'POST', { token: emu.apiKey, body: { image_name: 'x' } })
    expect(plainBody.status).toBe(400)
    expect(emu.counts().builds.submitted).toBe(submittedBefore)
  })

  it('wants the API key, and lives on its own origin', async () => {
    const context = contextArchive({ Dockerfile: 'FROM busybox:latest\n' })
    expect((await submitBuild(emu, context, {}, null)).status).toBe(401)
    const wrong = await submitBuild(emu, context, {}, 'not-the-key')
    expect(wrong.status).toBe(401)
    expect(wrong.json()).toEqual({ error: 'missing or invalid API key' })
    expect((await readStream(`${emu.builderUrl}/builds/x/logs`, null)).status).toBe(401)
    expect(emu.requests.every((r) => r.headers.authorization === undefined || r.headers.authorization === '<redacted>')).toBe(true)
    const onApi = await call(`${emu.apiUrl}/builds`, 'POST', { token: emu.apiKey, body: {} })
    expect(onApi.status).toBe(404)
    expect((await builder('GET', '/builds/build-nope')).status).toBe(404)
  })

  it('streams a large context to disk and really reads it', async () => {
    // Random bytes do not compress: the upload really is this large.
    const big = randomBytes(16 * 1024 * 1024)
    const { terminal, lines } = await build({ Dockerfile: 'FROM busybox:latest\nCOPY big.bin /big.bin\nRUN wc -c < /big.bin\n', 'big.bin': big })
    expect(terminal).toEqual({ done: true })
    expect(lines.some((line) => line.endsWith(` ${big.length}`))).toBe(true)
    const record = emu.requests.find((r) => r.server === 'builder' && r.method === 'POST')
    expect(record?.bodyBytes).toBeGreaterThan(big.length)
  })
})
