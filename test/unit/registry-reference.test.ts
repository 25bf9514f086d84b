import { describe, expect, it } from 'vitest'
import {
  InvalidReferenceError,
  formatReference,
  looksLikeRegistryReference,
  parseReference,
  registryApiBase,
  toContreeImportUrl,
} from '../../src/image/reference.ts'

const DIGEST = `sha256:${'a1'.repeat(32)}`

interface Case {
  name: string
  ref: string
  registry: string
  repository: string
  tag?: string
  digest?: string
  importUrl: string
  apiBase: string
}

const VALID: Case[] = [
  {
    name: 'official image with tag',
    ref: 'python:3.12-slim',
    registry: 'docker.io',
    repository: 'library/python',
    tag: '3.12-slim',
    importUrl: 'docker://docker.io/library/python:3.12-slim',
    apiBase: 'https://registry-1.docker.io',
  },
  {
    name: 'official image without tag gets latest',
    ref: 'ubuntu',
    registry: 'docker.io',
    repository: 'library/ubuntu',
    tag: 'latest',
    importUrl: 'docker://docker.io/library/ubuntu:latest',
    apiBase: 'https://registry-1.docker.io',
  },
  {
    name: 'user image on Docker Hub',
    ref: 'nimlang/nim:2.0',
    registry: 'docker.io',
    repository: 'nimlang/nim',
    tag: '2.0',
    importUrl: 'docker://docker.io/nimlang/nim:2.0',
    apiBase: 'https://registry-1.docker.io',
  },
  {
    name: 'explicit docker.io gains library/',
    ref: 'docker.io/alpine:3.20',
    registry: 'docker.io',
    repository: 'library/alpine',
    tag: '3.20',
    importUrl: 'docker://docker.io/library/alpine:3.20',
    apiBase: 'https://registry-1.docker.io',
  },
  {
    name: 'index.docker.io is Docker Hub',
    ref: 'index.docker.io/library/debian:12',
    registry: 'docker.io',
    repository: 'library/debian',
    tag: '12',
    importUrl: 'docker://docker.io/library/debian:12',
    apiBase: 'https://registry-1.docker.io',
  },
  {
    name: 'docker:// prefix is accepted',
    ref: 'docker://python:3.12',
    registry: 'docker.io',
    repository: 'library/python',
    tag: '3.12',
    importUrl: 'docker://docker.io/library/python:3.12',
    apiBase: 'https://registry-1.docker.io',
  },
  {
    name: 'ghcr.io with nested path',
    ref: 'ghcr.io/org/team/app:tag',
    registry: 'ghcr.io',
    repository: 'org/team/app',
    tag: 'tag',
    importUrl: 'docker://ghcr.io/org/team/app:tag',
    apiBase: 'https://ghcr.io',
  },
  {
    name: 'host with port, loopback is http',
    ref: '127.0.0.1:5000/team/app:v1',
    registry: '127.0.0.1:5000',
    repository: 'team/app',
    tag: 'v1',
    importUrl: 'docker://127.0.0.1:5000/team/app:v1',
    apiBase: 'http://127.0.0.1:5000',
  },
  {
    name: 'localhost is a host even without a dot or port',
    ref: 'localhost/x',
    registry: 'localhost',
    repository: 'x',
    tag: 'latest',
    importUrl: 'docker://localhost/x:latest',
    apiBase: 'http://localhost',
  },
  {
    name: 'localhost with port',
    ref: 'localhost:5000/x:1',
    registry: 'localhost:5000',
    repository: 'x',
    tag: '1',
    importUrl: 'docker://localhost:5000/x:1',
    apiBase: 'http://localhost:5000',
  },
  {
    name: 'registry host is lower-cased',
    ref: 'Registry.Example.COM/a/b',
    registry: 'registry.example.com',
    repository: 'a/b',
    tag: 'latest',
    importUrl: 'docker://registry.example.com/a/b:latest',
    apiBase: 'https://registry.example.com',
  },
  {
    name: 'digest reference without tag',
    ref: `127.0.0.1:5000/team/app@${DIGEST}`,
    registry: '127.0.0.1:5000',
    repository: 'team/app',
    digest: DIGEST,
    importUrl: `docker://127.0.0.1:5000/team/app@${DIGEST}`,
    apiBase: 'http://127.0.0.1:5000',
  },
  {
    name: 'digest reference with tag keeps both, imports by digest',
    ref: `python:3.12@${DIGEST}`,
    registry: 'docker.io',
    repository: 'library/python',
    tag: '3.12',
    digest: DIGEST,
    importUrl: `docker://docker.io/library/python@${DIGEST}`,
    apiBase: 'https://registry-1.docker.io',
  },
  {
    name: 'separators inside path components',
    ref: 'quay.io/my_org/my-app.v2__x:Tag_1.0-rc',
    registry: 'quay.io',
    repository: 'my_org/my-app.v2__x',
    tag: 'Tag_1.0-rc',
    importUrl: 'docker://quay.io/my_org/my-app.v2__x:Tag_1.0-rc',
    apiBase: 'https://quay.io',
  },
  {
    name: 'IPv6 loopback with port',
    ref: '[::1]:5000/a:b',
    registry: '[::1]:5000',
    repository: 'a',
    tag: 'b',
    importUrl: 'docker://[::1]:5000/a:b',
    apiBase: 'http://[::1]:5000',
  },
]

const INVALID: { name: string; ref: string; error: RegExp }[] = [
  { name: 'empty', ref: '', error: /empty/ },
  { name: 'uppercase repository', ref: 'Python:3.12', error: /lowercase/ },
  { name: 'uppercase path after a host', ref: 'ghcr.io/Org/app', error: /lowercase/ },
  { name: 'bad tag character', ref: 'python:3.12+x', error: /tag "3.12\+x" is not valid/ },
  { name: 'tag starting with a dot', ref: 'python:.x', error: /tag/ },
  { name: 'tag too long', ref: `python:${'a'.repeat(129)}`, error: /tag/ },
  { name: 'short digest', ref: 'python@sha256:abc', error: /not a digest/ },
  { name: 'uppercase digest', ref: `python@sha256:${'A'.repeat(64)}`, error: /not a digest/ },
  { name: 'empty path component', ref: 'ghcr.io//app', error: /empty path component/ },
  { name: 'trailing separator', ref: 'my-/app', error: /not a valid path component/ },
  { name: 'whitespace', ref: 'python 3', error: /whitespace/ },
  { name: 'bad port', ref: 'host:99999/app', error: /port/ },
  { name: 'missing repository', ref: ':tag', error: /repository name is missing/ },
  { name: 'name too long', ref: `ghcr.io/${'a'.repeat(260)}`, error: /longer than 255/ },
]

describe('parseReference', () => {
  it.each(VALID)('$name: $ref', (c) => {
    const parsed = parseReference(c.ref)
    expect(parsed.registry).toBe(c.registry)
    expect(parsed.repository).toBe(c.repository)
    expect(parsed.tag).toBe(c.tag)
    expect(parsed.digest).toBe(c.digest)
    expect(parsed.original).toBe(c.ref)
    expect(toContreeImportUrl(c.ref)).toBe(c.importUrl)
    expect(toContreeImportUrl(parsed)).toBe(c.importUrl)
    expect(registryApiBase(parsed)).toBe(c.apiBase)
    // The canonical form is a fixed point: parsing it again gives the same reference.
    const again = parseReference(formatReference(parsed))
    expect(formatReference(again)).toBe(formatReference(parsed))
  })

  it.each(INVALID)('rejects $name', ({ ref, error }) => {
    expect(() => parseReference(ref)).toThrow(InvalidReferenceError)
    expect(() => parseReference(ref)).toThrow(error)
  })

  it('quotes the offending reference in the message', () => {
    expect(() => parseReference('Bad/Name')).toThrow(/^Invalid image reference "Bad\/Name": /)
  })
})

describe('looksLikeRegistryReference', () => {
  it.each([
    ['python:3.12-slim', true],
    ['ghcr.io/org/app:tag', true],
    ['127.0.0.1:5000/team/app:v1', true],
    [`alpine@${DIGEST}`, true],
    ['docker://ubuntu', true],
    ['3f2c1d9e-8b7a-4c6d-9e0f-1a2b3c4d5e6f', false],
    ['3F2C1D9E-8B7A-4C6D-9E0F-1A2B3C4D5E6F', false],
    ['tag:my-base', false],
    ['tag:python:3.12', false],
    ['', false],
    ['Not A Ref', false],
  ])('%s → %s', (input, expected) => {
    expect(looksLikeRegistryReference(input)).toBe(expected)
  })
})
