/**
 * The inputs of mode refresh: one registry image under one name, nothing to run, and retire-previous
 * only where it means something. Every refusal names its input before anything remote is made.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { getInputs } from '../../src/inputs.ts'

const saved = { ...process.env }
function setInputs(values: Record<string, string>): void {
  for (const [name, value] of Object.entries(values)) process.env[`INPUT_${name.toUpperCase()}`] = value
}
beforeEach(() => {
  for (const key of Object.keys(process.env)) if (key.startsWith('INPUT_') || key.startsWith('CONTREE_') || key.startsWith('TOGETHER_')) delete process.env[key]
  process.env.GITHUB_WORKSPACE = fs.mkdtempSync(path.join(os.tmpdir(), 'refresh-inputs-'))
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
})
afterEach(() => {
  vi.restoreAllMocks()
  process.env = { ...saved }
})

const contree = { token: 't', 'api-url': 'https://contree.example.com', mode: 'refresh', image: 'docker.io/library/python:3.12', tag: 'python:nightly' }
const together = { provider: 'together', token: 't', mode: 'refresh', image: 'docker.io/library/python:3.12', tag: 'python-nightly' }

describe('mode refresh inputs', () => {
  it('reads a ConTree refresh: a registry image and the tag that follows it', () => {
    setInputs(contree)
    const inputs = getInputs()
    expect(inputs).toMatchObject({ mode: 'refresh', refresh: { retirePrevious: false }, image: { kind: 'registry', reference: 'docker.io/library/python:3.12' }, tag: 'python:nightly' })
    expect(inputs.run).toBeUndefined()
  })

  it('reads a Together refresh with retire-previous', () => {
    setInputs({ ...together, 'retire-previous': 'true' })
    expect(getInputs()).toMatchObject({ mode: 'refresh', refresh: { retirePrevious: true }, tag: 'python-nightly' })
  })

  it.each([
    [{ tag: '' }, /Input 'tag'.*required with mode refresh/],
    [{ image: 'tag:python:3.12' }, /Input 'image'.*must be a registry reference/],
    [{ run: 'echo hi' }, /Input 'run'.*no meaning with mode refresh/],
    [{ shards: '3' }, /Input 'shards'.*no meaning with mode refresh/],
    [{ 'pr-number': '7' }, /Input 'pr-number'.*mode preview/],
    [{ 'retire-previous': 'true' }, /Input 'retire-previous'/],
    [{ cache: 'false' }, /Input 'cache'.*must stay true with mode refresh on ConTree/],
  ])('refuses %o on ConTree, naming the input', (extra, message) => {
    setInputs({ ...contree, ...extra })
    expect(() => getInputs()).toThrow(message)
  })

  it('reads a Dockerfile refresh, and refuses an image beside the Dockerfile', () => {
    fs.writeFileSync(path.join(process.env.GITHUB_WORKSPACE as string, 'Dockerfile'), 'FROM docker.io/library/python:3.12\n')
    setInputs({ ...contree, image: '', dockerfile: 'Dockerfile' })
    const inputs = getInputs()
    expect(inputs).toMatchObject({ mode: 'refresh', tag: 'python:nightly' })
    expect(inputs.build?.dockerfile).toBe(path.join(process.env.GITHUB_WORKSPACE as string, 'Dockerfile'))
    expect(inputs.image).toBeUndefined()
    setInputs({ ...contree, dockerfile: 'Dockerfile' })
    expect(() => getInputs()).toThrow(/Input 'image'.*follows one source/)
  })

  it('refuses retire-previous outside mode refresh', () => {
    setInputs({ ...together, mode: 'run', run: 'true', 'retire-previous': 'true' })
    expect(() => getInputs()).toThrow(/Input 'retire-previous'.*mode refresh/)
  })
})
