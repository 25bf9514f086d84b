/**
 * End-to-end: Dockerfiles that `docker build` accepts build the same image here. Each test states
 * what the sandbox sees (env, cwd, user and group, files with modes and owners) as Docker documents
 * it for the same Dockerfile — the expected values come from Docker's behaviour, not from ours:
 * - an image's config Env, WorkingDir and User are where a stage starts (Dockerfile reference: ENV,
 *   WORKDIR "relative to the previous WORKDIR", USER "the user name … and the group");
 * - `COPY --chown=u:g` gives u:g to the files and to the directories it creates; without --chown,
 *   files and created directories are 0:0; a file keeps its permission bits;
 * - `USER name` runs with the name's primary group from the image's /etc/passwd;
 * - multi-stage: only the stages the target needs are built; `COPY --from` copies the stage's files;
 * - `<Dockerfile>.dockerignore` beside the Dockerfile replaces the context's .dockerignore.
 *
 * The base images are pushed to a real registry (Debian's docker-registry) with real OCI configs,
 * built from the host's static busybox, so a command finds only what the image holds. A counting
 * proxy in front of the registry tells how many registry requests the action makes.
 */
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import * as path from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startCacheService } from '../emulator/cache-service.ts'
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { pushImage, registryAvailable, startRegistry, type RunningRegistry } from '../emulator/registry.ts'
import type { TarFiles } from '../emulator/tar-writer.ts'
import { runAction, type ActionResult } from '../helpers/run-action.ts'
import { workspaceWith } from '../helpers/workspace.ts'

const TOKEN = 'tok-dockerfile-p3Kx'
const STANDARD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

const busyboxPath = ['/bin/busybox', '/usr/bin/busybox'].find((candidate) => fs.existsSync(candidate))
const ready = registryAvailable() && busyboxPath !== undefined

/** A root tree: static busybox with its applets (less `without`), accounts, and extra files. */
function imageTree(opts: { passwd: string; group: string; without?: string[]; busybox?: boolean; files?: TarFiles }): TarFiles {
  const files: TarFiles = {
    'etc/passwd': { content: opts.passwd, mode: 0o644 },
    'etc/group': { content: opts.group, mode: 0o644 },
    'tmp/': { mode: 0o1777 },
    'root/': { mode: 0o700 },
    ...opts.files,
  }
  if (opts.busybox !== false && busyboxPath) {
    files['bin/busybox'] = { content: new Uint8Array(fs.readFileSync(busyboxPath)), mode: 0o755 }
    const applets = execFileSync(busyboxPath, ['--list-full'], { encoding: 'utf8' }).split('\n').filter((line) => line !== '' && line !== 'bin/busybox')
    for (const applet of applets) {
      if (opts.without?.includes(path.posix.basename(applet))) continue
      files[applet] = { type: 'symlink', target: '/bin/busybox' }
    }
  }
  return files
}

const ROOT_PASSWD = 'root:x:0:0:root:/root:/bin/sh\n'
const ROOT_GROUP = 'root:x:0:\n'

interface CountingProxy {
  host: string
  requests: string[]
  close(): Promise<void>
}

/** A reverse proxy that records every request, in front of the registry. */
async function countingProxy(upstream: string): Promise<CountingProxy> {
  const target = new URL(upstream)
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`)
    const forward = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers)
      upstreamRes.pipe(res)
    })
    forward.on('error', () => res.destroy())
    req.pipe(forward)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { host: `127.0.0.1:${port}`, requests, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

let emulator: ContreeEmulator
let cacheService: Awaited<ReturnType<typeof startCacheService>>
let registry: RunningRegistry
let proxy: CountingProxy
const images: Record<string, { ref: string; pinned: string }> = {}

beforeAll(async () => {
  if (!ready) return
  emulator = await startContreeEmulator({ token: TOKEN, keepaliveMs: 200 })
  cacheService = await startCacheService()
  registry = await startRegistry()
  proxy = await countingProxy(registry.url)
  const push = async (name: string, files: TarFiles, config: Record<string, unknown>): Promise<void> => {
    const pushed = await pushImage(registry.url, `test/${name}`, 'v1', files, { config })
    images[name] = { ref: `${proxy.host}/test/${name}:v1`, pinned: `${proxy.host}/test/${name}@${pushed.digest}` }
  }
  await push('golang', imageTree({ passwd: ROOT_PASSWD, group: ROOT_GROUP, files: { 'go/': { mode: 0o1777 }, 'usr/local/go/bin/go': { mode: 0o755, content: '#!/bin/sh\necho "go version go1.22.5"\n' } } }), {
    Env: [`PATH=/go/bin:/usr/local/go/bin:${STANDARD_PATH}`, 'GOPATH=/go'],
    WorkingDir: '/go',
  })
  await push(
    'node',
    imageTree({
      passwd: `${ROOT_PASSWD}node:x:1000:1000::/home/node:/bin/sh\n`,
      group: `${ROOT_GROUP}node:x:1000:\n`,
      without: ['su', 'setpriv', 'login'],
      files: { 'home/node/': { mode: 0o755, uid: 1000, gid: 1000 } as TarFiles[string] },
    }),
    { Env: [`PATH=${STANDARD_PATH}`, 'NODE_VERSION=22.12.0'] },
  )
  await push(
    'jupyter',
    imageTree({ passwd: `${ROOT_PASSWD}jovyan:x:1000:100::/home/jovyan:/bin/sh\n`, group: `${ROOT_GROUP}users:x:100:\n`, files: { 'home/jovyan/': { mode: 0o755 } } }),
    { Env: [`PATH=${STANDARD_PATH}`, 'NB_UID=1000', 'NB_GID=100'], User: '1000', WorkingDir: '/home/jovyan' },
  )
  await push('distroless', imageTree({ passwd: `${ROOT_PASSWD}nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n`, group: `${ROOT_GROUP}nonroot:x:65532:\n`, busybox: false }), {
    Env: [`PATH=${STANDARD_PATH}`],
    User: '65532',
  })
}, 120_000)

afterAll(async () => {
  await emulator?.close()
  await cacheService?.close()
  await proxy?.close()
  await registry?.close()
})

beforeEach(async () => {
  if (!ready) return
  emulator.reset()
  await cacheService.setMode('ok')
  proxy.requests.length = 0
})

const spawns = () => emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/instances')

function project(files: Record<string, string>): string {
  // A fixed mode, whatever the umask: the expected modes below are Docker's for a 0644 file.
  return workspaceWith('dockerfile-ws-', files, { mode: 0o644 })
}

function build(workspace: string, inputs: Record<string, string> = {}): Promise<ActionResult> {
  return runAction({ workspace, inputs: { 'api-url': emulator.url, token: TOKEN, dockerfile: 'Dockerfile', ...inputs }, env: cacheService.env() })
}

/** The lines a command printed between two markers (so group headers and notices do not interfere). */
function printed(stdout: string, marker: string): string[] {
  const match = new RegExp(`${marker}-begin\\n([\\s\\S]*?)${marker}-end`).exec(stdout)
  return match?.[1]?.split('\n').filter((line) => line !== '') ?? []
}

describe.skipIf(!ready && !process.env.CI)('Dockerfiles as docker build reads them', () => {
  it('ENV PATH=…:$PATH extends the base image PATH, and a tool of the base image still runs', async () => {
    const workspace = project({
      Dockerfile: `FROM ${images.golang?.ref}\nENV PATH=/opt/venv/bin:$PATH\nRUN echo env-begin && echo "$PATH" && ls / >/dev/null && go && echo env-end`,
    })
    const result = await build(workspace)
    expect(result.exitCode, result.stdout).toBe(0)
    expect(printed(result.stdout, 'env')).toEqual([`/opt/venv/bin:/go/bin:/usr/local/go/bin:${STANDARD_PATH}`, 'go version go1.22.5'])
  })

  it('a relative WORKDIR is relative to the image WorkingDir, for RUN and for the run after the build', async () => {
    const workspace = project({ Dockerfile: `FROM ${images.golang?.ref}\nWORKDIR app\nRUN echo wd-begin && pwd && stat -c '%u:%g %a' . && echo wd-end` })
    const result = await build(workspace, { run: 'echo run-begin && pwd && echo "$GOPATH" && echo run-end' })
    expect(result.exitCode, result.stdout).toBe(0)
    // WORKDIR creates the directory (root, 0755: no USER in force).
    expect(printed(result.stdout, 'wd')).toEqual(['/go/app', '0:0 755'])
    expect(printed(result.stdout, 'run')).toEqual(['/go/app', '/go'])
  })

  it('USER name and COPY --chown=name:group work in an image without su or setpriv', async () => {
    const workspace = project({
      Dockerfile: [
        `FROM ${images.node?.ref}`,
        'COPY --chown=node:node app.js /home/node/app/',
        'USER node',
        'WORKDIR /home/node/app',
        'WORKDIR logs/today',
        "RUN echo id-begin && id -u && id -g && stat -c '%n %u:%g %a' /home/node/app /home/node/app/app.js /home/node/app/logs /home/node/app/logs/today && touch mine && echo id-end",
      ].join('\n'),
      'app.js': 'console.log(1)\n',
    })
    const result = await build(workspace, { run: 'echo run-begin && id -u && id -g && echo run-end' })
    expect(result.exitCode, result.stdout).toBe(0)
    // WORKDIR creates what is missing as the USER in force (BuildKit); the command can write there.
    expect(printed(result.stdout, 'id')).toEqual([
      '1000',
      '1000',
      '/home/node/app 1000:1000 755',
      '/home/node/app/app.js 1000:1000 644',
      '/home/node/app/logs 1000:1000 755',
      '/home/node/app/logs/today 1000:1000 755',
    ])
    // Like docker run: the image's USER runs the command.
    expect(printed(result.stdout, 'run')).toEqual(['1000', '1000'])
  })

  it('USER ${NB_UID} and COPY --chown=${NB_UID}:${NB_GID} take their values from the base image Env; a numeric USER gets its passwd group', async () => {
    const workspace = project({
      Dockerfile: [
        `FROM ${images.jupyter?.ref}`,
        'USER root',
        'COPY --chown=${NB_UID}:${NB_GID} notebook.ipynb ./',
        'USER ${NB_UID}',
        "RUN echo nb-begin && pwd && id -u && id -g && stat -c '%u:%g' notebook.ipynb && echo nb-end",
      ].join('\n'),
      'notebook.ipynb': '{}\n',
    })
    const result = await build(workspace)
    expect(result.exitCode, result.stdout).toBe(0)
    expect(printed(result.stdout, 'nb')).toEqual(['/home/jovyan', '1000', '100', '1000:100'])
  })

  it('a heredoc RUN and a COPY heredoc', async () => {
    const workspace = project({
      Dockerfile: [
        `FROM ${images.golang?.ref}`,
        'ARG WHO=docker',
        'COPY <<EOF /etc/greeting',
        'hello ${WHO}',
        'EOF',
        'RUN <<EOF',
        'echo here-begin',
        "cat /etc/greeting; stat -c '%a %u:%g' /etc/greeting",
        'echo here-end',
        'EOF',
        'RUN <<EOF',
        '#!/bin/sh',
        'echo script-begin; echo "ran as a script"; echo script-end',
        'EOF',
        // Nothing of the action is left in the image: no helper, no staging, no script directory.
        'RUN echo left-begin && ls -a / | grep -c sandbox-action; echo left-end',
      ].join('\n'),
    })
    const result = await build(workspace)
    expect(result.exitCode, result.stdout).toBe(0)
    expect(printed(result.stdout, 'here')).toEqual(['hello docker', '644 0:0'])
    expect(printed(result.stdout, 'script')).toEqual(['ran as a script'])
    expect(printed(result.stdout, 'left')).toEqual(['0'])
  })

  it('<Dockerfile>.dockerignore beside the Dockerfile replaces the context .dockerignore', async () => {
    const workspace = project({
      'docker/app.Dockerfile': `FROM ${images.golang?.ref}\nCOPY . /ctx/\nRUN echo ls-begin && ls -A /ctx && echo ls-end`,
      'docker/app.Dockerfile.dockerignore': 'secret.txt\ndocker\n',
      '.dockerignore': 'kept.txt\n',
      'secret.txt': 'no\n',
      'kept.txt': 'yes\n',
    })
    const result = await build(workspace, { dockerfile: 'docker/app.Dockerfile' })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(printed(result.stdout, 'ls')).toEqual(['.dockerignore', 'kept.txt'])
  })

  it('RUN --mount=type=secret and cache: the secret is there for the step only, never in the log or the image', async () => {
    const secret = 'sekr1t-Vq93'
    const workspace = project({
      Dockerfile: [
        `FROM ${images.node?.ref}`,
        'USER node',
        'RUN --mount=type=secret,id=npm,uid=1000 --mount=type=secret,id=npm,env=NPM_TOKEN --mount=type=cache,target=/home/node/.cache,uid=1000 \\',
        "  echo sec-begin && stat -c '%u %a' /run/secrets/npm && test \"$(cat /run/secrets/npm)\" = \"$NPM_TOKEN\" && echo same && env | grep -c SANDBOX_ACTION; touch /home/node/.cache/x && echo sec-end",
        "RUN echo after-begin && ls /run/secrets 2>&1 | grep -c npm; ls -A /home/node/.cache 2>/dev/null | wc -l; echo after-end",
      ].join('\n'),
    })
    const result = await build(workspace, { secrets: `npm=${secret}` })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(printed(result.stdout, 'sec')).toEqual(['1000 400', 'same', '0'])
    expect(printed(result.stdout, 'after')).toEqual(['0', '0'])
    // Masked as soon as it is read (the runner consumes ::add-mask::), and printed nowhere else.
    expect(result.stdout).toContain(`::add-mask::${secret}`)
    expect(`${result.stdout}${result.stderr}`.replaceAll(`::add-mask::${secret}`, '')).not.toContain(secret)
    // Never uploaded as a file: it travelled only in that step's spawn.
    expect(emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v1/files').some((r) => r.bodyBytes === secret.length)).toBe(false)
  })

  it('COPY and ADD <url> onto a path that is a directory in the image put the file inside it', async () => {
    const server = createServer((_req, res) => res.end('#!/bin/sh\necho tool\n'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const workspace = project({
        Dockerfile: `FROM ${images.golang?.ref}\nCOPY a.txt /tmp\nADD http://127.0.0.1:${port}/dl/tool.sh /tmp\nRUN echo in-begin && stat -c '%n %a %u:%g' /tmp/a.txt /tmp/tool.sh && echo in-end`,
        'a.txt': 'a\n',
      })
      const result = await build(workspace)
      expect(result.exitCode, result.stdout).toBe(0)
      // Docker: a downloaded file is 0600; a context file keeps its mode.
      expect(printed(result.stdout, 'in')).toEqual(['/tmp/a.txt 644 0:0', '/tmp/tool.sh 600 0:0'])
    } finally {
      server.close()
    }
  })

  it('the last step that only places files works in an image without a shell', async () => {
    const workspace = project({ Dockerfile: `FROM ${images.distroless?.ref}\nCOPY --chown=nonroot config.json /etc/app/` , 'config.json': '{}\n' })
    const result = await build(workspace)
    expect(result.exitCode, result.stdout).toBe(0)
    expect(spawns()).toHaveLength(1)
  })

  it('FROM an image this action built (by its ConTree tag) starts from the config that build ended with', async () => {
    const first = project({ Dockerfile: `FROM ${images.golang?.ref}\nENV BUILT=yes\nWORKDIR /srv/app\nRUN true` })
    expect((await build(first, { tag: 'fidelity/base:1' })).exitCode).toBe(0)
    const second = project({ Dockerfile: 'FROM tag:fidelity/base:1\nRUN echo cfg-begin && pwd && echo "$BUILT $GOPATH" && echo cfg-end' })
    const result = await build(second)
    expect(result.exitCode, result.stdout).toBe(0)
    expect(printed(result.stdout, 'cfg')).toEqual(['/srv/app', 'yes /go'])
    expect(result.stdout).not.toMatch(/config .* is unknown/)
  })

  it('--target builds the named stage and only what it needs', async () => {
    const workspace = project({
      Dockerfile: [`FROM ${images.golang?.ref} AS broken`, 'RUN exit 3', '', `FROM ${images.golang?.ref} AS tools`, 'RUN echo tools-stage > /tools.txt', '', 'FROM broken', 'RUN true'].join('\n'),
    })
    const result = await build(workspace, { target: 'tools', run: 'cat /tools.txt' })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(result.stdout).toContain('tools-stage')
    expect(spawns()).toHaveLength(2) // the tools stage's one step, and the run
  })

  describe('multi-stage with COPY --from', () => {
    const dockerfile = (from: string) =>
      [
        `FROM ${from} AS builder`,
        'WORKDIR /src',
        'COPY main.go .',
        "RUN mkdir -p /out && printf '#!/bin/sh\\necho built-from-%s\\n' \"$(cat main.go)\" > /out/app && chmod 750 /out/app && chown 1000:1000 /out/app",
        '',
        `FROM ${images.node?.ref}`,
        'COPY --from=builder /out/app /usr/local/bin/',
        'COPY --from=builder --chown=node:node /src /home/node/src',
        "RUN echo ms-begin && app && stat -c '%n %u:%g %a' /usr/local/bin/app /home/node/src /home/node/src/main.go && echo ms-end",
      ].join('\n')

    it('builds the builder stage, copies its files with their modes and owners, and rebuilds warm with 0 spawns and 1 registry request per tag', async () => {
      const workspace = project({ Dockerfile: dockerfile(images.golang?.ref ?? ''), 'main.go': 'main' })
      const cold = await build(workspace)
      expect(cold.exitCode, cold.stdout).toBe(0)
      // COPY --from keeps the stage's mode and owner; --chown replaces the owner, also of created directories.
      expect(printed(cold.stdout, 'ms')).toEqual([
        'built-from-main',
        '/usr/local/bin/app 1000:1000 750',
        '/home/node/src 1000:1000 755',
        '/home/node/src/main.go 1000:1000 644',
      ])
      emulator.reset()
      proxy.requests.length = 0
      const warm = await build(workspace)
      expect(warm.exitCode, warm.stdout).toBe(0)
      expect(warm.outputs['cache-hit']).toBe('true')
      expect(spawns()).toHaveLength(0)
      // One manifest check per FROM by tag: that the tag still points where it did.
      expect(proxy.requests.map((r) => r.split(' ')[0])).toEqual(['HEAD', 'HEAD'])
    })

    it('a digest-pinned multi-stage build rebuilds warm with 0 spawns and 0 registry requests', async () => {
      const text = dockerfile(images.golang?.pinned ?? '').replace(images.node?.ref ?? '', images.node?.pinned ?? '')
      const workspace = project({ Dockerfile: text, 'main.go': 'pinned' })
      expect((await build(workspace)).exitCode).toBe(0)
      emulator.reset()
      proxy.requests.length = 0
      const warm = await build(workspace)
      expect(warm.exitCode, warm.stdout).toBe(0)
      expect(spawns()).toHaveLength(0)
      expect(proxy.requests).toEqual([])
    })
  })
})
