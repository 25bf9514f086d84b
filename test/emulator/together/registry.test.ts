import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pushImage, pushTestImage, registryAvailable, startRegistry, type RunningRegistry } from '../registry.ts'
import { startTogetherEmulator, type TogetherEmulator } from './index.ts'
import { api, contextArchive, execToEnd, followBuild, runningSandbox, submitBuild } from './test-client.ts'

describe.skipIf(!registryAvailable())('Together emulator: images from a loopback registry', () => {
  let registry: RunningRegistry
  let emu: TogetherEmulator

  beforeAll(async () => {
    registry = await startRegistry()
    emu = await startTogetherEmulator({ log: () => undefined })
  })
  afterAll(async () => {
    await emu?.close()
    await registry?.close()
  })

  it('pulls a FROM image and a snapshot image it has not seen, and runs in their trees', async () => {
    const pushed = await pushImage(registry.url, 'team/base', '1', { 'etc/motd': 'from the registry\n', 'tmp/': { mode: 0o1777 } }, { base: 'base' })
    const submitted = await submitBuild(emu, contextArchive({ Dockerfile: `FROM ${pushed.reference}\nRUN cat /etc/motd\n` }))
    const { lines, terminal } = await followBuild(emu, submitted.json().build_id)
    expect(terminal).toEqual({ done: true })
    expect(lines.some((line) => line.endsWith(' from the registry'))).toBe(true)
    expect(lines).toContain(`#3 [internal] load metadata for ${pushed.reference}`)

    const other = await pushImage(registry.url, 'team/other', '2', { 'etc/motd': 'snapshot straight from the registry\n' }, { base: 'base' })
    const snapshot = await api(emu, 'POST', '/snapshots', { image: other.reference })
    expect(snapshot.status).toBe(201)
    const sandbox = await runningSandbox(emu, snapshot.json().id)
    const { frames } = await execToEnd(sandbox, 'cat', ['/etc/motd'])
    expect(frames[0].output).toBe('snapshot straight from the registry\n')
    expect((await api(emu, 'POST', '/snapshots', { image: `${registry.host}/team/missing:1` })).status).toBe(404)
  })

  it('builds FROM catalogue images pushed with their configs: their PATH, WORKDIR and USER apply to RUN', async () => {
    const golang = await pushTestImage(registry.url, 'library/golang', '1.22', 'golang')
    const jupyter = await pushTestImage(registry.url, 'jupyter/base-notebook', 'latest', 'jupyter')
    const dockerfile = [
      `FROM ${golang.reference}`,
      'RUN go version && pwd && id -u',
      `FROM ${jupyter.reference}`,
      'RUN id && pwd && touch /opt/conda/bin/tool && stat -c %U:%G /opt/conda/bin/tool',
      '',
    ].join('\n')
    const submitted = await submitBuild(emu, contextArchive({ Dockerfile: dockerfile }))
    const { lines, terminal } = await followBuild(emu, submitted.json().build_id)
    expect(terminal).toEqual({ done: true })
    const outputs = lines.filter((line) => /^#\d+ \d+\.\d{3} /.test(line)).map((line) => line.replace(/^#\d+ \S+ /, ''))
    expect(outputs).toEqual(['go version go1.22.5 linux/amd64', '/go', '0', 'uid=1000(jovyan) gid=100(users)', '/home/jovyan', 'jovyan:users'])
  })
})
