/**
 * End-to-end: remote Dockerfile builds and registry imports through the bundled action, against the
 * ConTree emulator, the real @actions/cache talking to the cache-service emulator, and a real OCI
 * registry (Debian's docker-registry) on loopback.
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CacheService } from '../emulator/cache-service.ts'
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { startRegistryAuthProxy } from '../emulator/registry-auth-proxy.ts'
import { pushImage, pushTestImage, registryAvailable, startRegistry } from '../emulator/registry.ts'
import { useContreeServices } from '../helpers/contree-services.ts'
import { runAction, startAction, type ActionResult } from '../helpers/run-action.ts'
import { eventually } from '../helpers/wait.ts'
import { workspaceWith } from '../helpers/workspace.ts'

const TOKEN = 'tok-build-Hf83kq'
let emulator: ContreeEmulator
let cacheService: CacheService
useContreeServices(TOKEN, (services) => ({ emulator, cacheService } = services))

const spawns = () => emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/instances')
const uploads = () => emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/files')
const probes = () => emulator.requests.filter((r) => r.method === 'GET' && /^\/v1\/files\/[0-9a-f]{64}$/.test(r.path))
const imports = () => emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/images/import')

function makeProject(files: Record<string, string>): string {
  return workspaceWith('build-ws-', files)
}

const DOCKERFILE = [
  'FROM busybox:latest',
  'ARG GREETING=hello',
  'ENV APP_HOME=/app',
  'WORKDIR $APP_HOME',
  'COPY src/ ./src/',
  'RUN cat src/message.txt > built.txt && echo "$GREETING from step one"',
  'LABEL purpose=test',
  'COPY config.txt /etc/app/config.txt',
  'RUN echo "config: $(cat /etc/app/config.txt)" && test -f /app/built.txt',
  'RUN echo last-step && cat /app/built.txt',
].join('\n')

function build(workspace: string, extra: Record<string, string> = {}, env: Record<string, string | undefined> = {}): Promise<ActionResult> {
  return runAction({
    workspace,
    inputs: { 'api-url': emulator.url, token: TOKEN, dockerfile: 'Dockerfile', 'build-args': 'GREETING=hi', ...extra },
    env: { ...cacheService.env(), ...env },
  })
}

describe('building a Dockerfile', () => {
  it('builds cold, then rebuilds warm with no spawn and no upload, across runners', async () => {
    const workspace = makeProject({
      Dockerfile: DOCKERFILE,
      'src/message.txt': 'the message\n',
      'config.txt': 'v1\n',
      '.dockerignore': 'ignored/\n',
      'ignored/big.bin': 'x'.repeat(1000),
    })
    const cold = await build(workspace, { run: 'cat /app/built.txt && echo "in $(pwd)"' })
    expect(cold.exitCode, cold.stdout + cold.stderr).toBe(0)
    expect(cold.stdout).toMatch(/::group::Step 1\/3: RUN cat src\/message.txt/)
    expect(cold.stdout).toMatch(/hi from step one/)
    expect(cold.stdout).toMatch(/config: v1/)
    expect(cold.stdout).toMatch(/::group::Step 3\/3: RUN echo last-step[\s\S]*the message/)
    expect(cold.stdout).toMatch(/LABEL: image metadata only/)
    expect(cold.stdout).toMatch(/::group::Run: [\s\S]*the message\n[\s\S]*in \/app/)
    expect(cold.outputs['cache-hit']).toBe('false')
    expect(cold.outputs['image-uuid']).toMatch(/^[0-9a-f-]{36}$/)
    expect(cold.outputs.digest).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(cold.summary).toMatch(/\| 3 \| RUN echo last.*step .*\| ✓ built \|/)
    expect(spawns()).toHaveLength(4)
    // The two context files (the ignored one never), the step helper, and one operations file per step.
    expect(uploads()).toHaveLength(2 + 1 + 3)
    // The build's step map, and the built image's config for a later FROM of it.
    expect(cacheService.entries().length).toBe(2)

    emulator.reset()
    const warm = await build(workspace)
    expect(warm.exitCode, warm.stdout).toBe(0)
    expect(warm.stdout.match(/CACHED/g)).toHaveLength(3)
    expect(warm.outputs['cache-hit']).toBe('true')
    expect(warm.outputs['image-uuid']).toBe(cold.outputs['image-uuid'])
    expect(warm.outputs.digest).toBe(cold.outputs.digest)
    expect(spawns()).toHaveLength(0)
    expect(uploads()).toHaveLength(0)
  })

  it('after an edit in the last step runs only that step', async () => {
    const workspace = makeProject({ Dockerfile: DOCKERFILE, 'src/message.txt': 'm\n', 'config.txt': 'v1\n' })
    expect((await build(workspace)).exitCode).toBe(0)
    fs.writeFileSync(path.join(workspace, 'Dockerfile'), DOCKERFILE.replace('echo last-step', 'echo edited-last-step'))
    emulator.reset()
    const edited = await build(workspace)
    expect(edited.exitCode, edited.stdout).toBe(0)
    expect(edited.stdout.match(/CACHED/g)).toHaveLength(2)
    expect(edited.stdout).toContain('edited-last-step')
    expect(spawns()).toHaveLength(1)
    expect(edited.outputs['cache-hit']).toBe('false')
  })

  it('after a change in a copied file reruns from the step that places it', async () => {
    const workspace = makeProject({ Dockerfile: DOCKERFILE, 'src/message.txt': 'm\n', 'config.txt': 'v1\n' })
    expect((await build(workspace)).exitCode).toBe(0)
    fs.writeFileSync(path.join(workspace, 'config.txt'), 'v2\n')
    emulator.reset()
    const changed = await build(workspace)
    expect(changed.exitCode).toBe(0)
    expect(changed.stdout.match(/CACHED/g)).toHaveLength(1)
    expect(changed.stdout).toContain('config: v2')
    expect(spawns()).toHaveLength(2)
    expect(uploads()).toHaveLength(1)
    // Unchanged files keep the ids the last build remembered: only the changed one is probed.
    expect(probes()).toHaveLength(1)
  })

  it('checks every file again when a remembered file is gone from the service', async () => {
    const workspace = makeProject({ Dockerfile: DOCKERFILE, 'src/message.txt': 'forgotten\n', 'config.txt': 'f1\n' })
    expect((await build(workspace)).exitCode).toBe(0)
    fs.writeFileSync(path.join(workspace, 'config.txt'), 'f2\n')
    fs.writeFileSync(path.join(workspace, 'Dockerfile'), `${DOCKERFILE}\nCOPY src/message.txt /again.txt\nRUN cat /again.txt`)
    expect(emulator.forgetFile(createHash('sha256').update('forgotten\n').digest('hex'))).toBe(true)
    emulator.reset()
    const result = await build(workspace)
    expect(result.exitCode, result.stdout).toBe(0)
    expect(result.stdout).toMatch(/checking its files again/)
    expect(result.stdout).toContain('forgotten')
  })

  it('treats a cached image that no longer exists as a miss', async () => {
    const workspace = makeProject({ Dockerfile: DOCKERFILE, 'src/message.txt': 'lost image\n', 'config.txt': 'v1\n' })
    const first = await build(workspace)
    expect(first.exitCode).toBe(0)
    // The service lost the last step's image: it answers 404 for it from now on.
    emulator.reset()
    emulator.faults.add({ method: 'GET', path: `^/v1/inspect/${first.outputs['image-uuid']}/$`, times: 100, action: { kind: 'status', status: 404, body: { error: 'image not found' } } })
    const second = await build(workspace)
    expect(second.exitCode, second.stdout).toBe(0)
    expect(second.stdout).toMatch(/no longer exists/)
    expect(spawns()).toHaveLength(1)
  })

  it('a failing RUN shows its output and exit code and caches nothing', async () => {
    const workspace = makeProject({ Dockerfile: 'FROM busybox:latest\nRUN echo about-to-fail && exit 7\nRUN echo never' })
    const before = cacheService.entries().length
    const result = await build(workspace, { 'build-args': '' })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toContain('about-to-fail')
    expect(result.stdout).toMatch(/::error::.*Step 1\/2.*exited with code 7/)
    expect(result.stdout).not.toContain('never')
    expect(cacheService.entries().length).toBe(before)
  })

  it('SIGINT during a RUN cancels the running operation and caches nothing', async () => {
    const workspace = makeProject({ Dockerfile: 'FROM busybox:latest\nRUN echo step-$((6*7)) && sleep 60' })
    const before = cacheService.entries().length
    const action = startAction({
      workspace,
      inputs: { 'api-url': emulator.url, token: TOKEN, dockerfile: 'Dockerfile' },
      env: cacheService.env(),
    })
    await action.waitForStdout(/step-42/)
    action.cancel()
    const result = await action.done
    expect(result.exitCode).not.toBe(0)
    const deletes = emulator.requests.filter((r) => r.method === 'DELETE')
    expect(deletes).toHaveLength(1)
    const opId = deletes[0]?.path.split('/').pop()
    await eventually(() => emulator.operations().find((o) => o.uuid === opId)?.status === 'CANCELLED', `operation ${opId} CANCELLED`)
    expect(cacheService.entries().length).toBe(before)
  })

  it('goes on without the cache when the cache service is down, with a warning', async () => {
    const workspace = makeProject({ Dockerfile: 'FROM busybox:latest\nRUN echo uncached' })
    await cacheService.setMode('down')
    const result = await build(workspace, { 'build-args': '' })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(result.stdout).toMatch(/::warning::/)
    expect(result.stdout).toContain('uncached')
  })

  it('explains a denied cache write and still succeeds', async () => {
    const workspace = makeProject({ Dockerfile: 'FROM busybox:latest\nRUN echo denied-write' })
    await cacheService.setMode('write-denied')
    const result = await build(workspace, { 'build-args': '' })
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(/::warning::.*actions: write/)
  })

  it('skips saving on a read-only cache (ACTIONS_CACHE_MODE=read)', async () => {
    const workspace = makeProject({ Dockerfile: 'FROM busybox:latest\nRUN echo read-only' })
    const before = cacheService.entries().length
    const result = await build(workspace, { 'build-args': '' }, { ACTIONS_CACHE_MODE: 'read' })
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(/::warning::.*read-only/)
    expect(cacheService.entries().length).toBe(before)
  })

  // The WORKDIR does not exist in the image: the build creates it (as Docker does), so the step and the run can use it.
  it('runs RUN steps and the following command as the Dockerfile USER, in its WORKDIR with its ENV', async () => {
    const workspace = makeProject({ Dockerfile: 'FROM busybox:latest\nWORKDIR /srv\nENV MODE=prod\nUSER 1000\nRUN echo "step uid=$(id -u)"' })
    const result = await build(workspace, { 'build-args': '', run: 'echo "run uid=$(id -u) cwd=$(pwd) mode=$MODE"' })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(result.stdout).toContain('step uid=1000')
    expect(result.stdout).toContain('run uid=1000 cwd=/srv mode=prod')
  })

  it('tags the final image', async () => {
    const workspace = makeProject({ Dockerfile: 'FROM busybox:latest\nRUN echo tagged' })
    const result = await build(workspace, { 'build-args': '', tag: 'e2e/tagged:latest' })
    expect(result.exitCode).toBe(0)
    expect(result.outputs.tag).toBe('e2e/tagged:latest')
    expect(emulator.images().find((i) => i.tag === 'e2e/tagged:latest')?.uuid).toBe(result.outputs['image-uuid'])
  })

  const escapes: [string, Record<string, string>, (dir: string) => void][] = [
    ['a ../ source', { Dockerfile: 'FROM busybox:latest\nCOPY ../secret /x\nRUN true' }, () => {}],
    ['a source climbing out through a subdirectory', { Dockerfile: 'FROM busybox:latest\nCOPY a/../../secret /x\nRUN true', 'a/f': '' }, () => {}],
    ['an absolute source', { Dockerfile: 'FROM busybox:latest\nCOPY /etc/passwd /x\nRUN true' }, () => {}],
    ['a symlink pointing out', { Dockerfile: 'FROM busybox:latest\nCOPY link /x\nRUN true' }, (dir) => fs.symlinkSync('/etc/passwd', path.join(dir, 'link'))],
    ['a symlinked directory pointing out', { Dockerfile: 'FROM busybox:latest\nCOPY d/ /x/\nRUN true' }, (dir) => fs.symlinkSync('/etc', path.join(dir, 'd'))],
  ]
  it.each(escapes)('refuses %s before anything remote happens', async (_name, files, setup) => {
    const workspace = makeProject(files)
    setup(workspace)
    const result = await build(workspace, { 'build-args': '' })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::.*Dockerfile:2/)
    expect(spawns()).toHaveLength(0)
    expect(uploads()).toHaveLength(0)
  })

  it('reports an unsupported instruction with its line number, before anything remote happens', async () => {
    const workspace = makeProject({ Dockerfile: 'FROM busybox:latest AS one\nRUN true\nFROM one\nRUN --mount=type=ssh git clone x' })
    const result = await build(workspace, { 'build-args': '' })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::.*Dockerfile:4: .*type=ssh is not supported/)
    expect(emulator.requests).toHaveLength(0)
  })
})

describe.skipIf(!registryAvailable() && !process.env.CI)('importing from a registry', () => {
  let registry: Awaited<ReturnType<typeof startRegistry>>
  beforeAll(async () => {
    registry = await startRegistry()
  })
  afterAll(async () => {
    await registry?.close()
  })

  function importRun(image: string, extra: Record<string, string> = {}): Promise<ActionResult> {
    return runAction({
      inputs: { 'api-url': emulator.url, token: TOKEN, image, run: 'cat /etc/imported.txt', ...extra },
      env: cacheService.env(),
    })
  }

  it('imports by tag once, then serves the same digest from the cache', async () => {
    const pushed = await pushImage(registry.url, 'team/app', 'v1', { 'etc/imported.txt': 'imported v1\n' }, { base: 'base' })
    const ref = `${registry.host}/team/app:v1`
    const first = await importRun(ref)
    expect(first.exitCode, first.stdout + first.stderr).toBe(0)
    expect(first.stdout).toMatch(/::group::Import /)
    expect(first.stdout).toContain('imported v1')
    expect(first.outputs.digest).toBe(pushed.digest)
    expect(first.outputs['cache-hit']).toBe('false')
    expect(imports()).toHaveLength(1)

    emulator.reset()
    const second = await importRun(ref)
    expect(second.exitCode).toBe(0)
    expect(imports()).toHaveLength(0)
    expect(second.outputs['cache-hit']).toBe('true')
    expect(second.outputs['image-uuid']).toBe(first.outputs['image-uuid'])
    // The cached id was confirmed with the service before the run used it.
    const confirm = emulator.requests.findIndex((r) => r.method === 'GET' && r.path === `/v1/inspect/${first.outputs['image-uuid']}/`)
    const spawn = emulator.requests.findIndex((r) => r.method === 'POST' && r.path === '/v1/instances')
    expect(confirm).toBeGreaterThanOrEqual(0)
    expect(confirm).toBeLessThan(spawn)

    // The tag moves upstream: a new digest, so a new import.
    const republished = await pushImage(registry.url, 'team/app', 'v1', { 'etc/imported.txt': 'imported v2\n' }, { base: 'base' })
    emulator.reset()
    const third = await importRun(ref)
    expect(third.exitCode).toBe(0)
    expect(imports()).toHaveLength(1)
    expect(third.outputs.digest).toBe(republished.digest)
    expect(third.stdout).toContain('imported v2')
  })

  it('runs an imported image as docker run would: its Env, WorkingDir and User', async () => {
    await pushTestImage(registry.url, 'team/notebook', 'v1', 'jupyter')
    const result = await importRun(`${registry.host}/team/notebook:v1`, { run: 'echo "uid=$(id -u) gid=$(id -g) cwd=$(pwd) conda=$CONDA_DIR"' })
    expect(result.exitCode, result.stdout).toBe(0)
    // docker run of jupyter/base-notebook: USER 1000 (group users, 100), WORKDIR /home/jovyan, the image's Env.
    expect(result.stdout).toContain('uid=1000 gid=100 cwd=/home/jovyan conda=/opt/conda')
  })

  it('imports by digest', async () => {
    const pushed = await pushImage(registry.url, 'team/pinned', 'v1', { 'etc/imported.txt': 'pinned\n' }, { base: 'base' })
    const result = await importRun(`${registry.host}/team/pinned@${pushed.digest}`)
    expect(result.exitCode, result.stdout).toBe(0)
    expect(result.stdout).toContain('pinned')
    expect(result.outputs.digest).toBe(pushed.digest)
  })

  it('builds FROM a registry image', async () => {
    await pushImage(registry.url, 'team/base', 'v1', { 'etc/imported.txt': 'base layer\n' }, { base: 'base' })
    const workspace = makeProject({ Dockerfile: `FROM ${registry.host}/team/base:v1\nRUN cat /etc/imported.txt` })
    const result = await build(workspace, { 'build-args': '' })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(result.stdout).toContain('base layer')
  })

  it('imports from a private registry with credentials, which never reach the log', async () => {
    const password = 'registry-pass-93kd'
    const proxy = await startRegistryAuthProxy(registry.url, { username: 'robot', password })
    try {
      const pushed = await pushImage(registry.url, 'team/private', 'v1', { 'etc/imported.txt': 'private image\n' }, { base: 'base' })
      const ref = `${proxy.host}/team/private:v1`
      const denied = await importRun(ref)
      expect(denied.exitCode).not.toBe(0)
      // Credentials named for another registry are never offered to this one, nor handed to the service.
      const elsewhere = await importRun(ref, { registry: 'ghcr.io', 'registry-username': 'robot', 'registry-password': password })
      expect(elsewhere.exitCode).not.toBe(0)
      expect(elsewhere.stdout).toContain(`Registry credentials are for ghcr.io, not ${proxy.host}`)
      expect(proxy.credentialedRequests).toBe(0)
      const result = await importRun(ref, { registry: proxy.host, 'registry-username': 'robot', 'registry-password': password })
      expect(result.exitCode, result.stdout).toBe(0)
      expect(proxy.credentialedRequests).toBeGreaterThan(0)
      expect(result.stdout).toContain('private image')
      expect(result.outputs.digest).toBe(pushed.digest)
      expect(proxy.tokenRequests).toBeGreaterThan(0)
      const log = result.stdout.replace(`::add-mask::${password}\n`, '')
      for (const text of [log, result.stderr, result.summary, JSON.stringify(result.outputs)]) expect(text).not.toContain(password)
    } finally {
      await proxy.close()
    }
  })

  it('fails clearly when the tag does not exist', async () => {
    const result = await importRun(`${registry.host}/team/missing:nope`)
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).toMatch(/::error::/)
  })
})
