import { describe, expect, it } from 'vitest'
import type { ContextFile, ContextTree } from '../../src/dockerfile/context.ts'
import type { ImageConfig } from '../../src/image/image-config.ts'
import { DockerfileError, parseDockerfile } from '../../src/dockerfile/dockerfile.ts'
import { createBuildPlan, DEFAULT_PATH, type PlannedStage, type PlanOptions, type SourceResolver } from '../../src/providers/contree/build/plan.ts'

/** A fake context: each source name maps to one file (or a directory of files when it is "dir"). */
function fakeContext(extra: Partial<Record<string, Partial<ContextFile>>> = {}): SourceResolver & { calls: string[][] } {
  const calls: string[][] = []
  const resolver = (sources: readonly string[]): ContextTree => {
    calls.push([...sources])
    const files = sources.flatMap((source) => {
      if (source === 'dir') {
        return ['x.txt', 'sub/y.txt'].map((name) => ({
          relPath: `dir/${name}`, absPath: `/ctx/dir/${name}`, size: 1, mode: 0o644, sha256: `sha-${name}`,
          source, sourceKind: 'directory' as const, pathInSource: name, archive: false,
        }))
      }
      if (source.includes('*')) return []
      return [{
        relPath: source, absPath: `/ctx/${source}`, size: 1, mode: 0o644, sha256: `sha-${source}`,
        source, sourceKind: 'file' as const, pathInSource: source.split('/').at(-1) ?? source, archive: false,
        ...extra[source],
      }]
    })
    return { files, dirs: [], links: [] }
  }
  return Object.assign(resolver, { calls })
}

const AMD64 = { os: 'linux', architecture: 'amd64' }
const CONFIGS: Record<string, Partial<ImageConfig>> = {
  golang: { env: ['PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin', 'GOPATH=/go'], workingDir: '/go' },
  node: { env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_VERSION=22'], user: 'node' },
  jupyter: { env: ['PATH=/opt/conda/bin:/usr/bin:/bin', 'NB_UID=1000', 'NB_GID=100'], user: '1000', shell: ['/bin/bash', '-o', 'pipefail', '-c'] },
}
const config = (ref: string): ImageConfig | undefined => {
  const partial = CONFIGS[ref]
  return partial ? { env: [], workingDir: '', user: '', entrypoint: null, cmd: null, shell: null, onBuild: [], ...partial } : undefined
}

async function fullPlan(text: string, options: Partial<PlanOptions> = {}) {
  return createBuildPlan(parseDockerfile(text), { resolveSources: fakeContext(), platform: AMD64, baseConfig: config, ...options })
}

/** The target stage, with the unused build args. */
async function plan(text: string, options: Partial<PlanOptions> = {}) {
  const result = await fullPlan(text, options)
  const target = result.stages.at(-1) as PlannedStage
  return { ...target, unusedBuildArgs: result.unusedBuildArgs, notes: result.notes }
}

/** env without the default PATH every stage of an unknown image starts with. */
const own = (env: Record<string, string> | undefined): Record<string, string> => {
  const { PATH: _path, ...rest } = env ?? {}
  return rest
}

async function planError(text: string, options: Partial<PlanOptions> = {}): Promise<DockerfileError> {
  try {
    await plan(text, options)
  } catch (error) {
    expect(error).toBeInstanceOf(DockerfileError)
    return error as DockerfileError
  }
  throw new Error('expected a DockerfileError')
}

describe('createBuildPlan: FROM and ARG', () => {
  it('FROM with an alias', async () => {
    const result = await plan('FROM alpine:3.20 AS base\nRUN true')
    expect(result).toMatchObject({ base: { kind: 'image', ref: 'alpine:3.20' }, line: 1, name: 'base' })
  })

  it('ARG before FROM is usable in FROM, with a build-arg override', async () => {
    const text = 'ARG TAG=3.19\nFROM alpine:${TAG}'
    expect((await plan(text)).base).toEqual({ kind: 'image', ref: 'alpine:3.19' })
    expect((await plan(text, { buildArgs: { TAG: '3.20' } })).base).toEqual({ kind: 'image', ref: 'alpine:3.20' })
  })

  it('a global ARG must be redeclared after FROM to be seen, and then keeps its value', async () => {
    const text = 'ARG V=1\nFROM a\nRUN echo one\nARG V\nRUN echo two'
    const { steps } = await plan(text)
    expect(own(steps[0]?.env)).toEqual({})
    expect(own(steps[1]?.env)).toEqual({ V: '1' })
    expect(steps[1]?.buildArgs).toEqual({ V: '1' })
  })

  it.each([
    { name: 'default', buildArgs: {} as Record<string, string>, env: { V: 'default' } },
    { name: 'build-arg overrides the default', buildArgs: { V: 'given' }, env: { V: 'given' } },
    { name: 'build-arg may be empty', buildArgs: { V: '' }, env: { V: '' } },
  ])('ARG value: $name', async ({ buildArgs, env }) => {
    const { steps } = await plan('FROM a\nARG V=default\nRUN x', { buildArgs })
    expect(own(steps[0]?.env)).toEqual(env)
  })

  it('an ARG without default or build-arg is unset', async () => {
    const { steps } = await plan('FROM a\nARG V\nENV W=${V:-unset}\nRUN x')
    expect(own(steps[0]?.env)).toEqual({ W: 'unset' })
  })

  it('ENV overrides an ARG of the same name, in the environment and in substitution', async () => {
    const { steps } = await plan('FROM a\nARG V=arg\nENV V=env\nENV W=$V\nRUN x', { buildArgs: { V: 'cli' } })
    expect(own(steps[0]?.env)).toEqual({ V: 'env', W: 'env' })
    expect(own(steps[0]?.imageEnv)).toEqual({ V: 'env', W: 'env' })
    expect(steps[0]?.buildArgs).toEqual({ V: 'cli' })
  })

  it('reports build args that no ARG declares, but not the predefined proxy args', async () => {
    const { unusedBuildArgs, steps } = await plan('ARG G\nFROM a\nARG USED\nRUN x', {
      buildArgs: { USED: '1', G: '2', ZED: '3', EXTRA: '4', HTTP_PROXY: 'http://proxy' },
    })
    expect(unusedBuildArgs).toEqual(['EXTRA', 'ZED'])
    expect(own(steps[0]?.env)).toEqual({ USED: '1', HTTP_PROXY: 'http://proxy' })
    expect(steps[0]?.buildArgs).toEqual({ USED: '1' })
  })

  it('TARGETOS, TARGETARCH, TARGETPLATFORM and BUILDPLATFORM are predefined: in FROM, and in a stage once declared', async () => {
    const { base, steps } = await plan('FROM --platform=$BUILDPLATFORM img:$TARGETARCH\nARG TARGETOS TARGETARCH TARGETPLATFORM\nRUN x')
    expect(base).toEqual({ kind: 'image', ref: 'img:amd64' })
    expect(steps[0]?.buildArgs).toEqual({ TARGETOS: 'linux', TARGETARCH: 'amd64', TARGETPLATFORM: 'linux/amd64' })
  })
})

describe('createBuildPlan: the base image config', () => {
  it('ENV PATH=…:$PATH extends the base image PATH (the most common line of all)', async () => {
    const { steps } = await plan('FROM golang\nENV PATH=/opt/venv/bin:$PATH\nRUN ls')
    expect(steps[0]?.env.PATH).toBe('/opt/venv/bin:/go/bin:/usr/local/go/bin:/usr/bin:/bin')
    expect(steps[0]?.env.GOPATH).toBe('/go')
  })

  it("an image without PATH (or an unknown image) gets Docker's default PATH", async () => {
    expect((await plan('FROM unknown\nENV PATH=/x:$PATH\nRUN ls')).steps[0]?.env.PATH).toBe(`/x:${DEFAULT_PATH}`)
  })

  it('a relative WORKDIR starts from the image WorkingDir; RUN runs there without WORKDIR too', async () => {
    expect((await plan('FROM golang\nWORKDIR app\nRUN x')).steps[0]?.cwd).toBe('/go/app')
    expect((await plan('FROM golang\nRUN x')).steps[0]?.cwd).toBe('/go')
  })

  it('USER, SHELL and variables start from the config', async () => {
    const node = await plan('FROM node\nRUN id')
    expect(node.steps[0]?.user).toBe('node')
    const jupyter = await plan('FROM jupyter\nUSER ${NB_UID}\nCOPY --chown=${NB_UID}:${NB_GID} a.txt /home/\nRUN x')
    expect(jupyter.steps[0]?.user).toBe('1000')
    expect(jupyter.steps[0]?.argv).toEqual(['/bin/bash', '-o', 'pipefail', '-c', 'x'])
    expect(jupyter.steps[0]?.ops[0]).toMatchObject({ kind: 'copy', chown: '1000:100' })
  })

  it('the final config is what `docker run` of the image starts with', async () => {
    const { final } = await plan('FROM golang\nENV A=1\nWORKDIR src\nUSER 1000\nCMD ["serve"]')
    expect(final).toMatchObject({ workingDir: '/go/src', user: '1000', cmd: ['serve'] })
    expect(final.env).toContain('A=1')
    expect(final.env).toContain('GOPATH=/go')
  })

  it("the base image's ONBUILD triggers run first, at the FROM line, and are not inherited; own ONBUILDs go in the config", async () => {
    const trig = (): ImageConfig => ({ env: [], workingDir: '', user: '', entrypoint: null, cmd: null, shell: null, onBuild: ['WORKDIR /app', 'COPY a.txt .', 'RUN make'] })
    const { steps, final } = await plan('FROM trig\nONBUILD RUN npm test\nRUN x', { baseConfig: trig })
    expect(steps.map((s) => [s.line, s.instruction])).toEqual([[1, 'RUN make'], [3, 'RUN x']])
    expect(steps[0]?.ops.map((op) => op.kind)).toEqual(['mkdir', 'copy'])
    expect(steps[0]?.cwd).toBe('/app')
    expect(final.onBuild).toEqual(['RUN npm test'])
    const bad = await planError('FROM trig\nRUN x', { baseConfig: () => ({ ...trig(), onBuild: ['FROM other'] }) })
    expect(bad.line).toBe(1)
  })
})

describe('createBuildPlan: ENV, WORKDIR, USER, SHELL', () => {
  it('every pair of one ENV sees the variables from before it (Docker example)', async () => {
    const { steps } = await plan('FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nRUN x')
    expect(own(steps[0]?.env)).toEqual({ abc: 'bye', def: 'hello', ghi: 'bye' })
  })

  it.each([
    { name: 'default is /', text: 'FROM a\nRUN x', cwd: '/' },
    { name: 'absolute', text: 'FROM a\nWORKDIR /app\nRUN x', cwd: '/app' },
    { name: 'relative to the previous', text: 'FROM a\nWORKDIR /a\nWORKDIR b\nWORKDIR c\nRUN x', cwd: '/a/b/c' },
    { name: 'cleaned', text: 'FROM a\nWORKDIR /a/./b/../c/\nRUN x', cwd: '/a/c' },
    { name: 'substituted from ENV', text: 'FROM a\nENV DIR=/srv\nWORKDIR $DIR/app\nRUN x', cwd: '/srv/app' },
    { name: 'quoted', text: 'FROM a\nWORKDIR "/my dir"\nRUN x', cwd: '/my dir' },
  ])('WORKDIR: $name', async ({ text, cwd }) => {
    expect((await plan(text)).steps[0]?.cwd).toBe(cwd)
  })

  it('WORKDIR creates its directory before the next step, owned by the USER in force', async () => {
    const { steps } = await plan('FROM a\nUSER app\nWORKDIR /srv\nUSER root\nWORKDIR data\nRUN x')
    expect(steps[0]?.ops).toEqual([
      { kind: 'mkdir', line: 3, path: '/srv', user: 'app' },
      { kind: 'mkdir', line: 5, path: '/srv/data', user: 'root' },
    ])
  })

  it.each([
    { name: 'shell form through the default shell', text: 'FROM a\nRUN echo $HOME && make', argv: ['/bin/sh', '-c', 'echo $HOME && make'] },
    { name: 'exec form', text: 'FROM a\nRUN ["make", "-j", "$N"]', argv: ['make', '-j', '$N'] },
    { name: 'custom SHELL wraps shell form', text: 'FROM a\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN a | b', argv: ['/bin/bash', '-o', 'pipefail', '-c', 'a | b'] },
    { name: 'SHELL does not touch exec form', text: 'FROM a\nSHELL ["/bin/bash", "-c"]\nRUN ["ls"]', argv: ['ls'] },
    { name: 'USER does not wrap anything (the executor switches ids)', text: 'FROM a\nUSER app\nRUN id -u', argv: ['/bin/sh', '-c', 'id -u'] },
  ])('RUN: $name', async ({ text, argv }) => {
    expect((await plan(text)).steps[0]?.argv).toEqual(argv)
  })

  it('RUN text is not substituted by the builder', async () => {
    const { steps } = await plan('FROM a\nENV X=1\nRUN echo $X ${Y:-z}')
    expect(steps[0]?.instruction).toBe('RUN echo $X ${Y:-z}')
    expect(steps[0]?.argv?.at(-1)).toBe('echo $X ${Y:-z}')
  })

  it('USER is substituted and kept on the step', async () => {
    const { steps } = await plan('FROM a\nENV U=app\nUSER $U\nRUN x')
    expect(steps[0]?.user).toBe('app')
  })
})

describe('createBuildPlan: heredocs', () => {
  it('RUN <<EOF alone runs the body with the shell; with #! it runs as a script placed for the step', async () => {
    const plain = await plan('FROM a\nRUN <<EOF\necho one\necho two\nEOF')
    expect(plain.steps[0]?.argv).toEqual(['/bin/sh', '-c', 'echo one\necho two\n'])
    const script = await plan('FROM a\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF')
    expect(script.steps[0]?.argv).toEqual(['/.sandbox-action-pipes/EOF'])
    expect(new TextDecoder().decode(script.steps[0]?.scripts[0]?.bytes)).toBe('#!/usr/bin/env python3\nprint(1)\n')
  })

  it('a heredoc fed to a command goes to the shell as written', async () => {
    const { steps } = await plan('FROM a\nRUN python3 <<EOF > out\nprint(1)\nEOF')
    expect(steps[0]?.argv).toEqual(['/bin/sh', '-c', 'python3 <<EOF > out\nprint(1)\nEOF\n'])
  })

  it('COPY <<EOF makes a file (0644), expanded unless the delimiter is quoted', async () => {
    const { steps } = await plan("FROM a\nENV WHO=world\nCOPY <<EOF /greeting\nhello $WHO\nEOF\nCOPY <<'RAW' <<two /d/\n$WHO\nRAW\n${WHO}!\ntwo\nRUN x")
    const entries = steps[0]?.ops.flatMap((op) => (op.kind === 'copy' ? op.entries : []))
    const text = (i: number) => {
      const content = entries?.[i]?.content
      return content?.kind === 'inline' ? new TextDecoder().decode(content.bytes) : undefined
    }
    expect(entries?.map((e) => [e.path, e.mode.toString(8)])).toEqual([['/greeting', '644'], ['/d/RAW', '644'], ['/d/two', '644']])
    expect([text(0), text(1), text(2)]).toEqual(['hello world\n', '$WHO\n', 'world!\n'])
  })
})

describe('createBuildPlan: RUN --mount and --network', () => {
  it('several mounts on one RUN, relative targets from WORKDIR', async () => {
    const { steps } = await plan('FROM a\nWORKDIR /w\nRUN --mount=type=cache,target=.cache --mount=type=secret,id=npm,env=NPM_TOKEN --mount=type=bind,source=cfg,target=/cfg --network=none make')
    expect(steps[0]?.mounts).toEqual([
      { type: 'cache', target: '/w/.cache', mode: 0o755, uid: 0, gid: 0 },
      { type: 'secret', id: 'npm', target: null, env: 'NPM_TOKEN', required: false, mode: 0o400, uid: 0, gid: 0 },
      { type: 'bind', target: '/cfg', source: 'cfg', from: { kind: 'context' }, readWrite: false },
    ])
    expect(steps[0]?.network).toBe('none')
  })

  it('a secret without env= is a file under /run/secrets', async () => {
    const { steps } = await plan('FROM a\nRUN --mount=type=secret,id=aws,required cat /run/secrets/aws')
    expect(steps[0]?.mounts[0]).toMatchObject({ type: 'secret', id: 'aws', target: '/run/secrets/aws', required: true })
  })

  it.each([
    { mount: 'type=ssh', message: /type=ssh is not supported/ },
    { mount: 'type=cache', message: /needs a target/ },
    { mount: 'type=cache,target=/x,bogus=1', message: /does not take the option "bogus"/ },
  ])('refuses --mount=$mount with the line', async ({ mount, message }) => {
    const error = await planError(`FROM a\nRUN --mount=${mount} x`)
    expect(error.line).toBe(2)
    expect(error.message).toMatch(message)
  })
})

describe('createBuildPlan: multi-stage', () => {
  const TWO_STAGES = 'FROM golang AS builder\nWORKDIR src\nCOPY a.txt .\nRUN go build -o /out/app\n\nFROM node AS unused\nRUN never\n\nFROM a\nCOPY --from=builder /out/app /usr/local/bin/\nRUN app'

  it('builds only the stages the target needs, dependencies first', async () => {
    const result = await fullPlan(TWO_STAGES)
    expect(result.stages.map((s) => s.index)).toEqual([0, 2])
    expect(result.stages[1]?.steps[0]?.ops).toEqual([
      { kind: 'copy-from', line: 10, from: { kind: 'stage', index: 0 }, paths: ['/out/app'], dest: '/usr/local/bin', destIsDir: true, chown: null, chmod: null },
    ])
  })

  it('--target picks a stage by name (case-insensitive) and builds only what it needs', async () => {
    const result = await fullPlan(TWO_STAGES, { target: 'Builder' })
    expect(result.stages.map((s) => s.index)).toEqual([0])
    await expect(fullPlan(TWO_STAGES, { target: 'nope' })).rejects.toThrow(/target stage "nope" could not be found \(stages: builder, unused\)/)
  })

  it('FROM <stage> starts from that stage\'s end state; COPY --from=<index> and --from=<image> are sources too', async () => {
    const result = await fullPlan('FROM golang AS base\nENV A=1\nWORKDIR src\nUSER 1000\n\nFROM base\nCOPY --from=0 /go/src /src\nCOPY --from=busybox:1 /bin/busybox /bin/\nRUN x')
    const last = result.stages[1]
    expect(last?.base).toEqual({ kind: 'stage', index: 0 })
    expect(last?.steps[0]).toMatchObject({ cwd: '/go/src', user: '1000' })
    expect(last?.steps[0]?.env.A).toBe('1')
    expect(last?.steps[0]?.ops.map((op) => (op.kind === 'copy-from' ? op.from : null))).toEqual([{ kind: 'stage', index: 0 }, { kind: 'image', ref: 'busybox:1' }])
    expect(result.graph.needed).toEqual([0, 1])
  })

  it('FROM scratch is refused, naming the line and why, only when the target needs it', async () => {
    const error = await planError('FROM a AS build\nRUN x\nFROM scratch\nCOPY --from=build /x /x')
    expect(error.line).toBe(3)
    expect(error.message).toMatch(/FROM scratch is not supported on this service: every remote operation starts from an existing image/)
    await expect(fullPlan('FROM a AS build\nRUN x\nFROM scratch\nCOPY --from=build /x /x', { target: 'build' })).resolves.toBeDefined()
  })

  it('FROM --platform other than the service platform is refused', async () => {
    const error = await planError('FROM --platform=linux/arm64 a\nRUN x')
    expect(error.message).toMatch(/runs linux\/amd64 only/)
  })
})

describe('createBuildPlan: COPY and ADD', () => {
  it('file operations are attached to the next RUN, in order, with WORKDIR applied at COPY time', async () => {
    const text = 'FROM a\nWORKDIR /app\nCOPY package.json ./\nCOPY --chown=app:staff --chmod=600 dir /data\nWORKDIR /elsewhere\nRUN npm ci\nRUN npm test'
    const { steps } = await plan(text, { hostPlatform: 'linux' })
    const copies = steps[0]?.ops.filter((op) => op.kind === 'copy') ?? []
    expect(copies.map((op) => [op.chown, op.entries.map((e) => [e.path, e.content?.kind === 'context' ? e.content.file.sha256 : null, e.mode.toString(8)])])).toEqual([
      [null, [['/app/package.json', 'sha-package.json', '644']]],
      ['app:staff', [['/data/x.txt', 'sha-x.txt', '600'], ['/data/sub/y.txt', 'sha-sub/y.txt', '600']]],
    ])
    expect(steps[0]?.ops.map((op) => op.kind)).toEqual(['mkdir', 'copy', 'copy', 'mkdir'])
    expect(steps[1]?.ops).toEqual([])
  })

  it('pending operations at the end get a commit step that runs no command', async () => {
    const { steps } = await plan('FROM a\nRUN x\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt')
    expect(steps).toHaveLength(2)
    expect(steps[1]).toMatchObject({ kind: 'commit', line: 4, instruction: 'commit file operations of lines 3, 4' })
    expect(steps[1]?.argv).toBeUndefined()
  })

  it('no RUN and no COPY means no steps', async () => {
    expect((await plan('FROM a\nENV X=1\nLABEL a=b')).steps).toEqual([])
  })

  it('COPY sources and dest are substituted and passed to the resolver', async () => {
    const resolveSources = fakeContext()
    const { stages } = await createBuildPlan(parseDockerfile('FROM a\nARG F=a.txt\nENV D=/opt\nCOPY $F ${D}/\nRUN x'), { resolveSources, platform: AMD64, baseConfig: config })
    expect(resolveSources.calls).toEqual([['a.txt']])
    expect(stages[0]?.steps[0]?.ops[0]).toMatchObject({ kind: 'copy', entries: [{ path: '/opt/a.txt' }] })
  })

  it('a wildcard that matches nothing is fine (COPY yarn.lock* package-lock.json* ./)', async () => {
    const { steps } = await plan('FROM a\nWORKDIR /w\nCOPY yarn.lock* package-lock.json* ./\nRUN x')
    expect(steps[0]?.ops.map((op) => op.kind)).toEqual(['mkdir'])
  })

  it('ADD of a URL: mode 0600; onto a path that may be a directory it carries the file name', async () => {
    const hex = 'ab'.repeat(32)
    const { steps } = await plan(`FROM a\nWORKDIR /w\nADD --checksum=sha256:${hex} https://example.com/t/tool.tgz ./\nADD https://example.com/x /tmp\nRUN x`)
    const entries = steps[0]?.ops.flatMap((op) => (op.kind === 'copy' ? op.entries : []))
    expect(entries).toEqual([
      { path: '/w/tool.tgz', type: 'file', mode: 0o600, content: { kind: 'url', url: 'https://example.com/t/tool.tgz', checksum: hex } },
      { path: '/tmp', type: 'file', mode: 0o600, content: { kind: 'url', url: 'https://example.com/x' }, intoDirName: 'x' },
    ])
  })

  it('ADD of a local archive is unpacked; other local files act as COPY', async () => {
    const resolveSources = fakeContext({ 'app.tar.gz': { archive: true } })
    const { steps } = await plan('FROM a\nADD app.tar.gz a.txt /opt/\nRUN x', { resolveSources })
    expect(steps[0]?.ops.map((op) => [op.kind, op.kind === 'unpack' ? op.archive.relPath : op.kind === 'copy' ? op.entries.map((e) => e.path) : null])).toEqual([
      ['unpack', 'app.tar.gz'],
      ['copy', ['/opt/a.txt']],
    ])
  })
})

describe('createBuildPlan: notes', () => {
  it('records metadata-only instructions', async () => {
    const text = 'FROM a\nLABEL a=b\nEXPOSE 80\nVOLUME /data\nSTOPSIGNAL SIGTERM\nHEALTHCHECK NONE\nMAINTAINER me'
    const { notes, steps } = await plan(text)
    expect(steps).toEqual([])
    expect(notes.map((n) => n.keyword)).toEqual(['LABEL', 'EXPOSE', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'MAINTAINER'])
  })
})

describe('createBuildPlan: errors carry the line', () => {
  it.each([
    { name: 'instruction before FROM', text: 'RUN x\nFROM a', line: 1, message: /RUN cannot come before FROM/ },
    { name: 'COPY --from a later stage', text: 'FROM a\nCOPY --from=1 /out /out\nFROM b AS x', line: 2, message: /comes later in the Dockerfile/ },
    { name: 'unknown COPY flag', text: 'FROM a\nCOPY --parents a /b/', line: 2, message: /COPY --parents is not supported/ },
    { name: 'RUN --security', text: 'FROM a\nRUN --security=insecure make', line: 2, message: /RUN --security is not supported/ },
    { name: 'COPY with one argument', text: 'FROM a\nCOPY onlyone', line: 2, message: /COPY requires at least two arguments/ },
    { name: 'several sources without a trailing /', text: 'FROM a\nCOPY a b /dest', line: 2, message: /the destination must be a directory and end with a \// },
    { name: 'bad chown', text: 'FROM a\n\nCOPY --chown=app: a /a', line: 3, message: /^Dockerfile:3: COPY --chown="app:": expected user\[:group\]/ },
    { name: 'SHELL not JSON', text: 'FROM a\nSHELL /bin/bash -c', line: 2, message: /SHELL requires the arguments to be in JSON form/ },
    { name: 'bad substitution', text: 'FROM a\nENV X=${Y', line: 2, message: /ENV: missing '}'/ },
    { name: 'required variable', text: 'FROM a\nWORKDIR ${DIR:?set DIR}', line: 2, message: /WORKDIR: DIR: set DIR/ },
    { name: 'FROM with two words', text: 'FROM a b', line: 1, message: /FROM requires either one or three arguments/ },
    { name: 'ADD of a git repository', text: 'FROM a\nADD https://github.com/o/r.git /src', line: 2, message: /ADD of a git repository/ },
    { name: 'ADD --checksum for a local file', text: 'FROM a\nADD --checksum=sha256:00 a.txt /a', line: 2, message: /--checksum can only be used with URL sources/ },
  ])('$name', async ({ text, line, message }) => {
    const error = await planError(text)
    expect(error.line).toBe(line)
    expect(error.message).toMatch(message)
    expect(error.message.startsWith(`Dockerfile:${line}: `)).toBe(true)
  })

  it('a context error keeps its cause and gains the line', async () => {
    const failing: SourceResolver = () => {
      throw new Error('build context: source "../x": it points outside the build context ("..")')
    }
    const error = await planError('FROM a\nCOPY ../x /x', { resolveSources: failing })
    expect(error.message).toBe('Dockerfile:2: COPY: build context: source "../x": it points outside the build context ("..")')
    expect(error.cause).toBeInstanceOf(Error)
  })

  it.each([
    { name: 'empty file', text: '# nothing\n', message: 'Dockerfile: the Dockerfile has no instructions' },
    { name: 'only ARG', text: 'ARG X=1', message: 'Dockerfile: no FROM instruction' },
  ])('whole-file error: $name', async ({ text, message }) => {
    const error = await planError(text)
    expect(error.line).toBeNull()
    expect(error.message).toBe(message)
  })
})
