import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { getInputs, INPUT_DEFAULTS, parseKeyValueLines, splitList } from '../../src/inputs.ts'
import { ACTION_VERSION } from '../../src/version.ts'
import { REPO_ROOT } from '../helpers/run-action.ts'

let workspace: string
const saved = { ...process.env }

function setInputs(values: Record<string, string>): void {
  for (const [name, value] of Object.entries(values)) process.env[`INPUT_${name.toUpperCase()}`] = value
}

beforeEach(() => {
  for (const key of Object.keys(process.env)) if (key.startsWith('INPUT_') || key.startsWith('CONTREE_')) delete process.env[key]
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'inputs-'))
  process.env.GITHUB_WORKSPACE = workspace
  // core.setSecret prints ::add-mask::; keep it out of the test output.
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
})
afterEach(() => {
  vi.restoreAllMocks()
  process.env = { ...saved }
})

const base = { token: 't0ken-value', 'api-url': 'https://contree.example.com/base/', image: 'tag:busybox:latest', run: 'make test' }

describe('getInputs', () => {
  it('reads a typical run with defaults', () => {
    setInputs(base)
    const inputs = getInputs()
    expect(inputs.apiUrl).toBe('https://contree.example.com/base')
    expect(inputs.image).toEqual({ kind: 'tag', tag: 'busybox:latest' })
    expect(inputs.run).toEqual({ command: 'make test', shell: true, env: {}, timeoutSeconds: 600, disposable: false })
    expect(inputs.failOnExitCode).toBe(true)
    expect(inputs.cache).toBe(true)
    expect(inputs.outputLimitBytes).toBe(16 * 1024 * 1024)
    expect(inputs.deadlineSeconds).toBe(600 + 15 * 60)
  })

  it.each([
    ['python:3.12-slim', { kind: 'tag', tag: 'python:3.12-slim' }],
    ['my-base', { kind: 'tag', tag: 'my-base' }],
    ['tag:ci/base:1', { kind: 'tag', tag: 'ci/base:1' }],
    ['docker.io/library/python:3.12', { kind: 'registry', reference: 'docker.io/library/python:3.12' }],
    ['docker://python:3.12', { kind: 'registry', reference: 'docker.io/python:3.12' }],
    ['ghcr.io/org/app@sha256:' + 'a'.repeat(64), { kind: 'registry', reference: 'ghcr.io/org/app@sha256:' + 'a'.repeat(64) }],
    ['localhost:5000/app', { kind: 'registry', reference: 'localhost:5000/app' }],
  ])('reads image %s without ever taking a bare name for Docker Hub', (image, expected) => {
    setInputs({ ...base, image })
    expect(getInputs().image).toEqual(expected)
  })

  it('binds registry credentials to the registry host it names', () => {
    setInputs({ ...base, registry: 'https://GHCR.io/', 'registry-username': 'me', 'registry-password': 'pw' })
    expect(getInputs().registryCredentials).toEqual({ host: 'ghcr.io', username: 'me', password: 'pw' })
  })

  it('reads output-limit sizes and a deadline', () => {
    setInputs({ ...base, 'output-limit': '512KiB', timeout: '60', deadline: '120' })
    const inputs = getInputs()
    expect(inputs.outputLimitBytes).toBe(512 * 1024)
    expect(inputs.deadlineSeconds).toBe(120)
    setInputs({ 'output-limit': '1g' })
    expect(getInputs().outputLimitBytes).toBe(1024 ** 3)
  })

  it('falls back to CONTREE_* variables and the public endpoint', () => {
    setInputs({ image: base.image, run: base.run })
    process.env.CONTREE_TOKEN = 'from-env'
    process.env.CONTREE_PROJECT = 'proj-1'
    const inputs = getInputs()
    expect(inputs.token).toBe('from-env')
    expect(inputs.project).toBe('proj-1')
    expect(inputs.apiUrl).toBe('https://api.tokenfactory.nebius.com/sandboxes')
  })

  it('masks the token and the registry password at once', () => {
    const writes: string[] = []
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      writes.push(String(chunk))
      return true
    })
    setInputs({ ...base, registry: 'ghcr.io', 'registry-username': 'me', 'registry-password': 'hunter22' })
    getInputs()
    expect(writes.join('')).toContain('::add-mask::t0ken-value')
    expect(writes.join('')).toContain('::add-mask::hunter22')
  })

  it('parses env, argv form, cwd and upload', () => {
    fs.writeFileSync(path.join(workspace, 'file.txt'), 'x')
    setInputs({ ...base, env: 'A=1\nB=two words\nC=x=y', shell: 'false', run: '["make","test"]', upload: 'file.txt' })
    const inputs = getInputs()
    expect(inputs.run?.env).toEqual({ A: '1', B: 'two words', C: 'x=y' })
    expect(inputs.run?.command).toBe('make')
    expect(inputs.run?.args).toEqual(['test'])
    expect(inputs.run?.cwd).toBe('/workspace')
    expect(inputs.upload?.paths).toEqual([path.join(workspace, 'file.txt')])
  })

  const invalid: [string, Record<string, string>, RegExp][] = [
    ['no token', { token: '' }, /^Input 'token': is required/],
    ['unsupported provider', { provider: 'other' }, /^Input 'provider'/],
    ['not a URL', { 'api-url': 'nope' }, /^Input 'api-url': "nope" is not a URL/],
    ['URL with credentials', { 'api-url': 'https://u:p@host' }, /^Input 'api-url'.*credentials/],
    ['negative timeout', { timeout: '-1' }, /^Input 'timeout'/],
    ['zero timeout', { timeout: '0' }, /^Input 'timeout': 0 is out of range/],
    ['env without =', { env: 'JUSTKEY' }, /^Input 'env': entry 1 "JUSTKEY"/],
    ['env bad key', { env: '1A=x' }, /^Input 'env'/],
    ['image form', { image: 'UPPER/Case Image' }, /^Input 'image'/],
    ['empty tag', { image: 'tag:' }, /^Input 'image'/],
    ['boolean', { 'fail-on-exit-code': 'yes' }, /^Input 'fail-on-exit-code': expected true or false, got "yes"/],
    ['relative cwd', { cwd: 'src' }, /^Input 'cwd'/],
    ['argv not JSON', { shell: 'false', run: 'make test' }, /^Input 'run': with shell: false/],
    ['upload escape', { upload: '../x' }, /^Input 'upload': "..\/x" is outside the workspace/],
    ['upload missing', { upload: 'missing.txt' }, /^Input 'upload': "missing.txt" does not exist/],
    ['nothing to do', { run: '', image: '' }, /^Input 'run'/],
    ['run without image', { image: '' }, /^Input 'image': is required/],
    ['password without user', { 'registry-password': 'x' }, /^Input 'registry-username'/],
    ['credentials without a registry', { 'registry-username': 'me', 'registry-password': 'x' }, /^Input 'registry': is required with registry-username/],
    ['a registry that is not a host', { registry: 'ghcr.io/org', 'registry-username': 'me' }, /^Input 'registry': "ghcr.io\/org" is not a registry host/],
    ['a registry without credentials', { registry: 'ghcr.io' }, /^Input 'registry': is set but registry-username is not/],
    ['an output limit too large', { 'output-limit': '2GiB' }, /^Input 'output-limit': "2GiB" is not a size/],
    ['an output limit without a number', { 'output-limit': 'lots' }, /^Input 'output-limit'/],
    ['a zero deadline', { deadline: '0' }, /^Input 'deadline': 0 is out of range/],
    ['a deadline that is not a number', { deadline: '1h' }, /^Input 'deadline': "1h" is not a whole number/],
    ['an image with spaces', { image: 'my image' }, /^Input 'image'/],
    ['dockerfile outside', { dockerfile: '../Dockerfile' }, /^Input 'dockerfile'.*outside the workspace/],
    ['build-args without dockerfile', { 'build-args': 'A=1' }, /^Input 'build-args'/],
  ]
  it.each(invalid)('rejects %s with an error naming the input', (_name, extra, message) => {
    setInputs({ ...base, ...extra })
    expect(() => getInputs()).toThrow(message)
  })

  it('refuses an upload path that leaves the workspace through a symlink', () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'outside-'))
    fs.symlinkSync(outside, path.join(workspace, 'link'))
    setInputs({ ...base, upload: 'link' })
    expect(() => getInputs()).toThrow(/through a symlink/)
  })
})

describe('list and key=value parsing', () => {
  it('splits lists on newlines, or commas on one line', () => {
    expect(splitList('a, b,c')).toEqual(['a', 'b', 'c'])
    expect(splitList('a,b\nc')).toEqual(['a,b', 'c'])
    expect(splitList('')).toEqual([])
  })
  it('allows comma separated build args on one line', () => {
    expect(parseKeyValueLines('build-args', 'A=1,B=2', true)).toEqual({ A: '1', B: '2' })
  })
})

describe('action.yml', () => {
  const yml = fs.readFileSync(path.join(REPO_ROOT, 'action.yml'), 'utf8')
  it.each(Object.entries(INPUT_DEFAULTS))('declares the same default for %s', (name, value) => {
    const block = new RegExp(`\\n  ${name}:\\n(?:    .*\\n|      .*\\n)*?    default: '([^']*)'`).exec(yml)
    expect(block?.[1]).toBe(value)
  })
  it('runs on node24 with main and post', () => {
    expect(yml).toMatch(/using: 'node24'/)
    expect(yml).toMatch(/main: 'dist\/index.js'/)
    expect(yml).toMatch(/post: 'dist\/index.js'/)
    expect(yml).toMatch(/post-if: 'always\(\)'/)
  })
  it('states the version package.json has', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
    expect(ACTION_VERSION).toBe(pkg.version)
  })
})
