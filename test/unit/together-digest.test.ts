/**
 * What decides a remote build's digest (and what does not), the registry images a Dockerfile reads,
 * the Dockerfile cut after a target stage, and the default layer-cache key.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, chmodSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { defaultCacheKey } from '../../src/providers/together/cache-key.ts'
import { readContextTree } from '../../src/providers/together/context-tree.ts'
import { buildDigest, findBaseReferences, imageDigest, type BuildDigestInput } from '../../src/providers/together/digest.ts'
import { cutAfterTarget } from '../../src/providers/together/dockerfile-target.ts'

const temps: string[] = []
afterEach(() => {
  while (temps.length > 0) rmSync(temps.pop() as string, { recursive: true, force: true })
})

async function contextWith(files: Record<string, string>, mtime = new Date('2020-01-01')) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'digest-'))
  temps.push(root)
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true })
    writeFileSync(path.join(root, rel), content)
    utimesSync(path.join(root, rel), mtime, mtime)
  }
  return { root, tree: await readContextTree(root, path.join(root, 'Dockerfile')) }
}

const DOCKERFILE = 'FROM busybox\nCOPY . /app\n'
const BASE: Array<[string, string]> = [['docker.io/library/busybox:latest', `sha256:${'1'.repeat(64)}`]]

function input(tree: BuildDigestInput['tree'], extra: Partial<BuildDigestInput> = {}): BuildDigestInput {
  return { tree, dockerfileText: DOCKERFILE, buildArgs: {}, architecture: 'amd64', baseDigests: BASE, ...extra }
}

describe('build digest', () => {
  it('is the same for two checkouts that differ only in timestamps', async () => {
    const a = await contextWith({ Dockerfile: DOCKERFILE, 'src/x.txt': 'x' }, new Date('2019-01-01'))
    const b = await contextWith({ Dockerfile: DOCKERFILE, 'src/x.txt': 'x' }, new Date('2025-01-01'))
    expect(buildDigest(input(a.tree))).toBe(buildDigest(input(b.tree)))
  })

  it('changes with every input that changes the result', async () => {
    const { root, tree } = await contextWith({ Dockerfile: DOCKERFILE, 'src/x.txt': 'x' })
    const base = buildDigest(input(tree))
    const variants: string[] = [
      buildDigest(input(tree, { buildArgs: { V: '1' } })),
      buildDigest(input(tree, { target: 'prod' })),
      buildDigest(input(tree, { architecture: 'arm64' })),
      buildDigest(input(tree, { dockerfileText: `${DOCKERFILE}RUN true\n` })),
      buildDigest(input(tree, { baseDigests: [['docker.io/library/busybox:latest', `sha256:${'2'.repeat(64)}`]] })),
    ]
    writeFileSync(path.join(root, 'src/x.txt'), 'changed')
    variants.push(buildDigest(input((await readContextTree(root, path.join(root, 'Dockerfile'))))))
    chmodSync(path.join(root, 'src/x.txt'), 0o755)
    variants.push(buildDigest(input((await readContextTree(root, path.join(root, 'Dockerfile'))))))
    mkdirSync(path.join(root, 'empty'))
    variants.push(buildDigest(input((await readContextTree(root, path.join(root, 'Dockerfile'))))))
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1)
  })

  it('names the image digest by reference, manifest and architecture', () => {
    const manifest = `sha256:${'3'.repeat(64)}`
    expect(imageDigest('python:3.12', manifest, 'amd64')).toBe(imageDigest('docker.io/library/python:3.12', manifest, 'amd64'))
    expect(imageDigest('python:3.12', manifest, 'amd64')).not.toBe(imageDigest('python:3.12', manifest, 'arm64'))
  })
})

describe('base references', () => {
  it('reads every FROM and COPY --from image, with global ARGs and build args, skipping stages and scratch', () => {
    const text = [
      'ARG BASE=python',
      'ARG VERSION=3.11',
      'FROM ${BASE}:${VERSION} AS build',
      'RUN make',
      'FROM scratch AS empty',
      'FROM build AS test',
      'COPY --from=ghcr.io/o/tools:1 /bin/tool /bin/tool',
      'COPY --from=build /out /out',
      'COPY --from=0 /out /out2',
      'FROM --platform=linux/amd64 gcr.io/distroless/static',
    ].join('\n')
    expect(findBaseReferences(text, { VERSION: '3.12' })).toEqual({
      refs: ['docker.io/library/python:3.12', 'gcr.io/distroless/static:latest', 'ghcr.io/o/tools:1'],
    })
  })

  it('cannot name a base that only a stage variable defines, or a Dockerfile it cannot read', () => {
    expect(findBaseReferences('FROM ${NOPE}\n', {})).toHaveProperty('unknown')
    expect(findBaseReferences('FROM python:${NOPE}\n', {})).toHaveProperty('unknown')
    expect(findBaseReferences('FROMM busybox\n', {})).toHaveProperty('unknown')
  })
})

describe('target', () => {
  const text = 'FROM busybox AS base\nRUN a\n\nFROM base AS test\nRUN b\nFROM base AS prod\nRUN c\n'

  it('cuts the Dockerfile after the target stage, so the builder\'s last stage is the target', () => {
    expect(cutAfterTarget(text, 'TEST')).toBe('FROM busybox AS base\nRUN a\n\nFROM base AS test\nRUN b\n')
    expect(cutAfterTarget(text, 'prod')).toBe(text)
  })

  it('names the stages there are when the target is not one of them', () => {
    expect(() => cutAfterTarget(text, 'nope')).toThrow(/Input 'target': "nope" is not a stage of Dockerfile \(its stages: base, test, prod\)/)
  })
})

describe('default cache key', () => {
  it('is stable per repository and Dockerfile, in the builder\'s alphabet', () => {
    expect(defaultCacheKey('Octo-Org/My_Repo', 'docker/App.Dockerfile')).toBe('sandbox-action/octo-org/my_repo/docker/app.dockerfile')
    expect(defaultCacheKey(undefined, 'Dockerfile')).toBe('sandbox-action/local/dockerfile')
    const long = defaultCacheKey('o/r', `${'d/'.repeat(200)}Dockerfile`)
    expect(long.length).toBeLessThanOrEqual(255)
    expect(long).toMatch(/^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/)
  })
})
