import { describe, expect, it } from 'vitest'
import type { ContextFile } from '../../src/build/context.ts'
import { DockerfileError, parseDockerfile } from '../../src/build/dockerfile.ts'
import { createBuildPlan, type PlanOptions, type SourceResolver } from '../../src/build/plan.ts'

/** A fake context: each source name maps to one file (or a directory of files when it ends in "/"). */
function fakeContext(extra: Partial<Record<string, Partial<ContextFile>>> = {}): SourceResolver & { calls: string[][] } {
  const calls: string[][] = []
  const resolver = (sources: readonly string[]): ContextFile[] => {
    calls.push([...sources])
    return sources.flatMap((source) => {
      if (source === 'dir') {
        return ['x.txt', 'sub/y.txt'].map((name) => ({
          relPath: `dir/${name}`, absPath: `/ctx/dir/${name}`, size: 1, mode: 0o644, sha256: `sha-${name}`,
          source, sourceKind: 'directory' as const, pathInSource: name, archive: false,
        }))
      }
      return [{
        relPath: source, absPath: `/ctx/${source}`, size: 1, mode: 0o644, sha256: `sha-${source}`,
        source, sourceKind: 'file' as const, pathInSource: source.split('/').at(-1) ?? source, archive: false,
        ...extra[source],
      }]
    })
  }
  return Object.assign(resolver, { calls })
}

async function plan(text: string, options: Partial<PlanOptions> = {}) {
  return createBuildPlan(parseDockerfile(text), { resolveSources: fakeContext(), ...options })
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
    expect(result.from).toEqual({ ref: 'alpine:3.20', line: 1, alias: 'base' })
  })

  it('ARG before FROM is usable in FROM, with a build-arg override', async () => {
    const text = 'ARG TAG=3.19\nFROM alpine:${TAG}'
    expect((await plan(text)).from.ref).toBe('alpine:3.19')
    expect((await plan(text, { buildArgs: { TAG: '3.20' } })).from.ref).toBe('alpine:3.20')
  })

  it('a global ARG must be redeclared after FROM to be seen, and then keeps its value', async () => {
    const text = 'ARG V=1\nFROM a\nRUN echo one\nARG V\nRUN echo two'
    const { steps } = await plan(text)
    expect(steps[0]?.env).toEqual({})
    expect(steps[1]?.env).toEqual({ V: '1' })
    expect(steps[1]?.buildArgs).toEqual({ V: '1' })
  })

  it.each([
    { name: 'default', buildArgs: {} as Record<string, string>, env: { V: 'default' } },
    { name: 'build-arg overrides the default', buildArgs: { V: 'given' }, env: { V: 'given' } },
    { name: 'build-arg may be empty', buildArgs: { V: '' }, env: { V: '' } },
  ])('ARG value: $name', async ({ buildArgs, env }) => {
    const { steps } = await plan('FROM a\nARG V=default\nRUN x', { buildArgs })
    expect(steps[0]?.env).toEqual(env)
  })

  it('an ARG without default or build-arg is unset', async () => {
    const { steps } = await plan('FROM a\nARG V\nENV W=${V:-unset}\nRUN x')
    expect(steps[0]?.env).toEqual({ W: 'unset' })
  })

  it('ENV overrides an ARG of the same name, in the environment and in substitution', async () => {
    const { steps } = await plan('FROM a\nARG V=arg\nENV V=env\nENV W=$V\nRUN x', { buildArgs: { V: 'cli' } })
    expect(steps[0]?.env).toEqual({ V: 'env', W: 'env' })
    expect(steps[0]?.imageEnv).toEqual({ V: 'env', W: 'env' })
    expect(steps[0]?.buildArgs).toEqual({ V: 'cli' })
  })

  it('ARG defaults can use earlier variables', async () => {
    const { steps } = await plan('FROM a\nENV BASE=/opt\nARG DIR=$BASE/app\nRUN x')
    expect(steps[0]?.env.DIR).toBe('/opt/app')
  })

  it('reports build args that no ARG declares, but not the predefined proxy args', async () => {
    const { unusedBuildArgs, steps } = await plan('ARG G\nFROM a\nARG USED\nRUN x', {
      buildArgs: { USED: '1', G: '2', ZED: '3', EXTRA: '4', HTTP_PROXY: 'http://proxy' },
    })
    expect(unusedBuildArgs).toEqual(['EXTRA', 'ZED'])
    expect(steps[0]?.env).toEqual({ USED: '1', HTTP_PROXY: 'http://proxy' })
    expect(steps[0]?.buildArgs).toEqual({ USED: '1' })
  })
})

describe('createBuildPlan: ENV, WORKDIR, USER, SHELL', () => {
  it('every pair of one ENV sees the variables from before it (Docker example)', async () => {
    const { steps } = await plan('FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nRUN x')
    expect(steps[0]?.env).toEqual({ abc: 'bye', def: 'hello', ghi: 'bye' })
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

  it.each([
    { name: 'default shell form', text: 'FROM a\nRUN echo $HOME && make', run: { command: 'echo $HOME && make', shell: true } },
    { name: 'exec form', text: 'FROM a\nRUN ["make", "-j", "$N"]', run: { command: 'make', args: ['-j', '$N'], shell: false } },
    { name: 'exec form without args', text: 'FROM a\nRUN ["true"]', run: { command: 'true', shell: false } },
    {
      name: 'custom SHELL wraps shell form',
      text: 'FROM a\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN a | b',
      run: { command: '/bin/bash', args: ['-o', 'pipefail', '-c', 'a | b'], shell: false },
    },
    { name: 'SHELL does not touch exec form', text: 'FROM a\nSHELL ["/bin/bash", "-c"]\nRUN ["ls"]', run: { command: 'ls', shell: false } },
    {
      name: 'named USER goes through su',
      text: 'FROM a\nUSER app\nRUN id -u',
      run: { command: 'su', args: ['-s', '/bin/sh', '-c', 'id -u', 'app'], shell: false },
    },
    {
      name: 'named USER with exec form quotes the argv',
      text: `FROM a\nUSER app\nRUN ["echo", "it's"]`,
      run: { command: 'su', args: ['-s', '/bin/sh', '-c', `echo 'it'\\''s'`, 'app'], shell: false },
    },
    {
      name: 'numeric USER:GROUP goes through setpriv',
      text: 'FROM a\nUSER 1000:1000\nRUN id',
      run: { command: 'setpriv', args: ['--reuid=1000', '--regid=1000', '--clear-groups', '--', '/bin/sh', '-c', 'id'], shell: false },
    },
    { name: 'USER root is not wrapped', text: 'FROM a\nUSER app\nUSER root\nRUN id', run: { command: 'id', shell: true } },
  ])('RUN: $name', async ({ text, run }) => {
    expect((await plan(text)).steps[0]?.run).toEqual(run)
  })

  it('RUN text is not substituted by the builder', async () => {
    const { steps } = await plan('FROM a\nENV X=1\nRUN echo $X ${Y:-z}')
    expect(steps[0]?.instruction).toBe('RUN echo $X ${Y:-z}')
    expect(steps[0]?.run?.command).toBe('echo $X ${Y:-z}')
  })

  it('USER is substituted and kept on the step', async () => {
    const { steps } = await plan('FROM a\nENV U=app\nUSER $U\nRUN x')
    expect(steps[0]?.user).toBe('app')
  })
})

describe('createBuildPlan: COPY and ADD', () => {
  it('files are attached to the next RUN, with WORKDIR applied at COPY time', async () => {
    const text = 'FROM a\nWORKDIR /app\nCOPY package.json ./\nCOPY --chown=1000 --chmod=600 dir /data\nWORKDIR /elsewhere\nRUN npm ci\nRUN npm test'
    const { steps } = await plan(text)
    expect(steps[0]?.files.map((f) => [f.path, f.file.sha256, f.mode, f.uid, f.gid])).toEqual([
      ['/app/package.json', 'sha-package.json', '0644', 0, 0],
      ['/data/x.txt', 'sha-x.txt', '0600', 1000, 1000],
      ['/data/sub/y.txt', 'sha-sub/y.txt', '0600', 1000, 1000],
    ])
    expect(steps[1]?.files).toEqual([])
  })

  it('pending files at the end get a commit step', async () => {
    const { steps } = await plan('FROM a\nRUN x\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt')
    expect(steps).toHaveLength(2)
    expect(steps[1]).toMatchObject({ kind: 'commit', line: 4, instruction: 'commit 2 pending files', run: { command: ':', shell: true } })
    expect(steps[1]?.files.map((f) => f.path)).toEqual(['/a.txt', '/b.txt'])
  })

  it('no RUN and no COPY means no steps', async () => {
    expect((await plan('FROM a\nENV X=1\nLABEL a=b')).steps).toEqual([])
  })

  it('a later COPY to the same path replaces the earlier one', async () => {
    const { steps } = await plan('FROM a\nCOPY a.txt /x\nCOPY b.txt /x\nRUN y')
    expect(steps[0]?.files.map((f) => [f.path, f.file.relPath])).toEqual([['/x', 'b.txt']])
  })

  it('COPY sources and dest are substituted and passed to the resolver', async () => {
    const resolveSources = fakeContext()
    const { steps } = await createBuildPlan(parseDockerfile('FROM a\nARG F=a.txt\nENV D=/opt\nCOPY $F ${D}/\nRUN x'), { resolveSources })
    expect(resolveSources.calls).toEqual([['a.txt']])
    expect(steps[0]?.files.map((f) => f.path)).toEqual(['/opt/a.txt'])
  })

  it('COPY JSON form', async () => {
    const { steps } = await plan('FROM a\nCOPY ["my file", "/d/"]\nRUN x')
    expect(steps[0]?.files.map((f) => f.path)).toEqual(['/d/my file'])
  })

  it('ADD of a URL is recorded for the executor to download (mode 0600, as Docker)', async () => {
    const hex = 'ab'.repeat(32)
    const { steps } = await plan(`FROM a\nWORKDIR /w\nADD --checksum=sha256:${hex} https://example.com/t/tool.tgz ./\nADD https://example.com/x /opt/x\nRUN x`)
    expect(steps[0]?.urlFiles).toEqual([
      { url: 'https://example.com/t/tool.tgz', dest: '/w/tool.tgz', mode: '0600', uid: 0, gid: 0, checksum: hex },
      { url: 'https://example.com/x', dest: '/opt/x', mode: '0600', uid: 0, gid: 0 },
    ])
  })

  it('ADD of a local plain file acts as COPY', async () => {
    const { steps } = await plan('FROM a\nADD a.txt /a\nRUN x')
    expect(steps[0]?.files.map((f) => f.path)).toEqual(['/a'])
  })
})

describe('createBuildPlan: notes', () => {
  it('records instructions with no remote effect', async () => {
    const text = 'FROM a\nLABEL a=b\nEXPOSE 80\nCMD ["x"]\nENTRYPOINT ["y"]\nVOLUME /data\nSTOPSIGNAL SIGTERM\nHEALTHCHECK NONE\nMAINTAINER me\nONBUILD RUN x'
    const { notes, steps } = await plan(text)
    expect(steps).toEqual([])
    expect(notes).toEqual(
      ['LABEL', 'EXPOSE', 'CMD', 'ENTRYPOINT', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'MAINTAINER', 'ONBUILD'].map((keyword, i) => ({
        line: i + 2, keyword, note: 'no remote effect',
      })),
    )
  })

  it('FROM --platform is noted as ignored', async () => {
    const { notes } = await plan('FROM --platform=linux/arm64 a')
    expect(notes).toEqual([{ line: 1, keyword: 'FROM', note: '--platform=linux/arm64 ignored: the sandbox service decides the platform' }])
  })
})

describe('createBuildPlan: errors carry the line', () => {
  it.each([
    { name: 'second FROM', text: 'FROM a AS build\nRUN make\n\nFROM b\nCOPY x y', line: 4, message: /multi-stage builds are not supported: second FROM \(the first is on line 1\)/ },
    { name: 'instruction before FROM', text: 'RUN x\nFROM a', line: 1, message: /RUN cannot come before FROM/ },
    { name: 'COPY --from', text: 'FROM a\nCOPY --from=build /out /out', line: 2, message: /COPY --from is not supported/ },
    { name: 'unknown COPY flag', text: 'FROM a\nCOPY --parents a /b/', line: 2, message: /COPY --parents is not supported/ },
    { name: 'RUN --mount', text: 'FROM a\nRUN --mount=type=cache,target=/x make', line: 2, message: /RUN --mount is not supported/ },
    { name: 'COPY with one argument', text: 'FROM a\nCOPY onlyone', line: 2, message: /COPY requires at least two arguments/ },
    { name: 'several sources without a trailing /', text: 'FROM a\nCOPY a b /dest', line: 2, message: /the destination must be a directory and end with a \// },
    { name: 'chown by name', text: 'FROM a\n\nCOPY --chown=app a /a', line: 3, message: /^Dockerfile:3: COPY --chown="app": user "app" must be a numeric id/ },
    { name: 'SHELL not JSON', text: 'FROM a\nSHELL /bin/bash -c', line: 2, message: /SHELL requires the arguments to be in JSON form/ },
    { name: 'bad substitution', text: 'FROM a\nENV X=${Y', line: 2, message: /ENV: missing '}'/ },
    { name: 'required variable', text: 'FROM a\nWORKDIR ${DIR:?set DIR}', line: 2, message: /WORKDIR: DIR: set DIR/ },
    { name: 'FROM scratch', text: 'FROM scratch', line: 1, message: /FROM scratch is not supported/ },
    { name: 'FROM with two words', text: 'FROM a b', line: 1, message: /FROM requires either one or three arguments/ },
    { name: 'ADD of a git repository', text: 'FROM a\nADD https://github.com/o/r.git /src', line: 2, message: /ADD of a git repository/ },
    { name: 'ADD --checksum for a local file', text: 'FROM a\nADD --checksum=sha256:00 a.txt /a', line: 2, message: /--checksum can only be used with URL sources/ },
  ])('$name', async ({ text, line, message }) => {
    const error = await planError(text)
    expect(error.line).toBe(line)
    expect(error.message).toMatch(message)
    expect(error.message.startsWith(`Dockerfile:${line}: `)).toBe(true)
  })

  it('ADD of a local tar archive is refused with a hint', async () => {
    const resolveSources = fakeContext({ 'app.tar.gz': { archive: true } })
    const error = await createBuildPlan(parseDockerfile('FROM a\nADD app.tar.gz /opt/'), { resolveSources }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DockerfileError)
    expect((error as Error).message).toBe(
      'Dockerfile:2: ADD of a local tar archive ("app.tar.gz") is not supported: Docker would unpack it. Use COPY, then RUN tar -xf in the image',
    )
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
