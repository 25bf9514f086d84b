import { describe, expect, it } from 'vitest'
import type { ContextFile } from '../../src/dockerfile/context.ts'
import { parseDockerfile } from '../../src/dockerfile/dockerfile.ts'
import { createBuildPlan, type BuildPlan, type BuildStep } from '../../src/providers/contree/build/plan.ts'
import { buildCacheKey, canonicalJson, fromKey, stepKey, stepKeys } from '../../src/providers/contree/build/step-key.ts'

const PLAN = { platform: { os: 'linux', architecture: 'amd64' }, baseConfig: () => undefined, resolveSources: () => ({ files: [], dirs: [], links: [] }) }
const steps = (plan: BuildPlan): BuildStep[] => plan.stages.at(-1)?.steps ?? []
const base = { provider: 'contree', endpoint: 'https://api.example', project: 'p1', baseImage: 'uuid-1' }

/** Plans `text` against a fake context whose file contents are given by `contents` (name → sha256). */
async function keysFor(text: string, contents: Record<string, string> = {}, buildArgs: Record<string, string> = {}): Promise<string[]> {
  const plan = await createBuildPlan(parseDockerfile(text), {
    ...PLAN,
    buildArgs,
    resolveSources: (sources) => ({
      files: sources.map((source): ContextFile => ({
        relPath: source, absPath: `/ctx/${source}`, size: 1, mode: 0o644, sha256: contents[source] ?? 'default',
        source, sourceKind: 'file', pathInSource: source, archive: false,
      })),
      dirs: [],
      links: [],
    }),
  })
  return stepKeys(fromKey(base), steps(plan))
}

const dockerfile = [
  'FROM alpine',
  'ENV A=1',
  'COPY one.txt /one.txt',
  'RUN step-1',
  'RUN step-2',
  'WORKDIR /app',
  'RUN step-3',
  'COPY two.txt ./',
  'RUN step-4',
  'ARG V=x',
  'RUN step-5',
  'RUN step-6',
].join('\n')

describe('fromKey', () => {
  it.each([
    { name: 'provider', change: { provider: 'other' } },
    { name: 'endpoint', change: { endpoint: 'https://api2.example' } },
    { name: 'project', change: { project: 'p2' } },
    { name: 'base image', change: { baseImage: 'uuid-2' } },
  ])('changes with the $name', ({ change }) => {
    expect(fromKey({ ...base, ...change })).not.toBe(fromKey(base))
  })

  it('fields cannot bleed into each other', () => {
    expect(fromKey({ ...base, provider: 'a', endpoint: 'bc' })).not.toBe(fromKey({ ...base, provider: 'ab', endpoint: 'c' }))
  })

  it('is a sha256 hex digest and stable', () => {
    expect(fromKey(base)).toMatch(/^[0-9a-f]{64}$/)
    expect(fromKey(base)).toBe(fromKey({ ...base }))
  })
})

describe('stepKey', () => {
  it('is stable across runs', async () => {
    expect(await keysFor(dockerfile)).toEqual(await keysFor(dockerfile))
  })

  it('an edit in step 5 leaves keys 1-4 unchanged and changes 5 and later', async () => {
    const before = await keysFor(dockerfile)
    const after = await keysFor(dockerfile.replace('RUN step-5', 'RUN step-5 --verbose'))
    expect(after.slice(0, 4)).toEqual(before.slice(0, 4))
    expect(after[4]).not.toBe(before[4])
    expect(after[5]).not.toBe(before[5])
  })

  it('a changed file content changes its step and later ones only', async () => {
    const before = await keysFor(dockerfile, { 'two.txt': 'sha-old' })
    const after = await keysFor(dockerfile, { 'two.txt': 'sha-new' })
    expect(after.slice(0, 3)).toEqual(before.slice(0, 3))
    expect(after.slice(3).every((key, i) => key !== before[i + 3])).toBe(true)
  })

  it('file metadata other than content (mtime, size, host path) is not part of the key', async () => {
    const plan = await createBuildPlan(parseDockerfile('FROM a\nCOPY f /f\nRUN x'), {
      ...PLAN,
      resolveSources: () => ({ files: [{ relPath: 'f', absPath: '/ctx/f', size: 1, mode: 0o644, sha256: 's', source: 'f', sourceKind: 'file', pathInSource: 'f', archive: false }], dirs: [], links: [] }),
    })
    const step = steps(plan)[0] as BuildStep
    const moved: BuildStep = JSON.parse(JSON.stringify(step).replace('/ctx/f', '/elsewhere/f')) as BuildStep
    expect(stepKey('prev', moved)).toBe(stepKey('prev', step))
  })

  it('comments, blank lines and line numbers do not matter', async () => {
    const spaced = dockerfile.replace('ENV A=1', '# a comment\n\nENV A=1')
    expect(await keysFor(spaced)).toEqual(await keysFor(dockerfile))
  })

  it.each([
    { name: 'ENV value', edit: (t: string) => t.replace('ENV A=1', 'ENV A=2'), from: 0 },
    { name: 'WORKDIR', edit: (t: string) => t.replace('WORKDIR /app', 'WORKDIR /srv'), from: 2 },
    { name: 'ARG default', edit: (t: string) => t.replace('ARG V=x', 'ARG V=y'), from: 4 },
    { name: 'destination path', edit: (t: string) => t.replace('COPY one.txt /one.txt', 'COPY one.txt /uno.txt'), from: 0 },
    { name: 'USER', edit: (t: string) => t.replace('RUN step-3', 'USER 1000\nRUN step-3'), from: 2 },
    { name: 'SHELL', edit: (t: string) => t.replace('RUN step-3', 'SHELL ["/bin/bash", "-c"]\nRUN step-3'), from: 2 },
    { name: 'chmod', edit: (t: string) => t.replace('COPY two.txt', 'COPY --chmod=0600 two.txt'), from: 3 },
  ])('changing $name changes keys from that step on', async ({ edit, from }) => {
    const before = await keysFor(dockerfile)
    const after = await keysFor(edit(dockerfile))
    expect(after.slice(0, from)).toEqual(before.slice(0, from))
    expect(after[from]).not.toBe(before[from])
  })

  it('a build arg changes keys only after its ARG is declared', async () => {
    const before = await keysFor(dockerfile)
    const after = await keysFor(dockerfile, {}, { V: 'override' })
    expect(after.slice(0, 4)).toEqual(before.slice(0, 4))
    expect(after[4]).not.toBe(before[4])
  })

  it('proxy build args are not part of the key', async () => {
    expect(await keysFor(dockerfile, {}, { HTTPS_PROXY: 'http://proxy:3128' })).toEqual(await keysFor(dockerfile))
  })

  it('env order is irrelevant', async () => {
    const one = await keysFor('FROM a\nENV A=1 B=2\nRUN x')
    const two = await keysFor('FROM a\nENV B=2\nENV A=1\nRUN x')
    expect(one).toEqual(two)
  })

  it('the base image changes every key', async () => {
    const plan = await createBuildPlan(parseDockerfile('FROM a\nRUN x\nRUN y'), PLAN)
    const one = stepKeys(fromKey(base), steps(plan))
    const two = stepKeys(fromKey({ ...base, baseImage: 'uuid-2' }), steps(plan))
    expect(one.map((key, i) => key !== two[i])).toEqual([true, true])
  })

  it('URL files use the downloaded digest when given', async () => {
    const plan = await createBuildPlan(parseDockerfile('FROM a\nADD https://e.com/f /f\nRUN x'), PLAN)
    const step = steps(plan)[0] as BuildStep
    const plain = stepKey('p', step)
    const urls = (digests: Record<string, string>) => ({ urlDigests: digests })
    expect(stepKey('p', step, urls({ 'https://e.com/f': 'sha-1' }))).not.toBe(plain)
    expect(stepKey('p', step, urls({ 'https://e.com/f': 'sha-1' }))).not.toBe(stepKey('p', step, urls({ 'https://e.com/f': 'sha-2' })))
    expect(stepKey('p', step, urls({ 'https://other/': 'sha-1' }))).toBe(plain)
  })

  it('COPY --from uses the source stage result key: a changed builder changes the key, the same one does not', async () => {
    const plan = await createBuildPlan(parseDockerfile('FROM a AS b\nRUN make\nFROM c\nCOPY --from=b /out /out\nRUN x'), PLAN)
    const step = steps(plan)[0] as BuildStep
    const withStage = (key: string) => ({ stageKeys: new Map([[0, key]]) })
    expect(stepKey('p', step, withStage('k1'))).toBe(stepKey('p', step, withStage('k1')))
    expect(stepKey('p', step, withStage('k1'))).not.toBe(stepKey('p', step, withStage('k2')))
  })

  it('secret values never enter the key; their ids do', async () => {
    const one = await keysFor('FROM a\nRUN --mount=type=secret,id=tok make')
    const two = await keysFor('FROM a\nRUN --mount=type=secret,id=other make')
    expect(one).not.toEqual(two)
  })
})

describe('buildCacheKey', () => {
  it('covers the base key and every step key, in order', () => {
    const key = buildCacheKey('base', ['k1', 'k2'])
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    expect(buildCacheKey('base', ['k1', 'k2'])).toBe(key)
    expect(buildCacheKey('base', ['k2', 'k1'])).not.toBe(key)
    expect(buildCacheKey('base2', ['k1', 'k2'])).not.toBe(key)
    expect(buildCacheKey('base', ['k1'])).not.toBe(key)
  })
})

describe('canonicalJson', () => {
  it('sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}')
  })
})
