/**
 * The inputs across the two providers, checked against action.yml (what the runner and the docs say):
 * an input marked [ConTree] or [Together] there is refused on the other provider with an error naming
 * it, and no unmarked one is; tokens and addresses fall back to each provider's own environment
 * variables, never the other's; and action.yml declares exactly the inputs the code reads and the
 * outputs it sets.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { getInputs, INPUT_DEFAULTS } from '../../src/inputs.ts'
import { REPO_ROOT } from '../helpers/run-action.ts'

interface Declared {
  description: string
  default?: string
}

/**
 * Reads one top-level section (`inputs:` or `outputs:`) of action.yml in the layout the file keeps:
 * two-space names, four-space keys, a description either quoted on one line or folded (`>-`).
 */
function section(yml: string, name: 'inputs' | 'outputs'): Map<string, Declared> {
  const lines = yml.split('\n')
  const start = lines.indexOf(`${name}:`)
  expect(start, `action.yml has ${name}:`).toBeGreaterThanOrEqual(0)
  const found = new Map<string, Declared>()
  let current: Declared | undefined
  let folding = false
  for (const line of lines.slice(start + 1)) {
    if (/^\S/.test(line)) break
    const entry = /^ {2}([a-z][a-z-]*):\s*$/.exec(line)
    if (entry) {
      current = { description: '' }
      found.set(entry[1] as string, current)
      folding = false
      continue
    }
    const key = /^ {4}([a-z]+):\s*(.*)$/.exec(line)
    if (key && current) {
      const [, field, value] = key as unknown as [string, string, string]
      folding = field === 'description' && value === '>-'
      const unquoted = value.replace(/^'(.*)'$/, '$1').replace(/''/g, "'")
      if (field === 'description' && !folding) current.description = unquoted
      if (field === 'default') current.default = unquoted
      continue
    }
    if (folding && current && /^ {6}/.test(line)) current.description += `${current.description ? ' ' : ''}${line.trim()}`
  }
  return found
}

const yml = fs.readFileSync(path.join(REPO_ROOT, 'action.yml'), 'utf8')
const declaredInputs = section(yml, 'inputs')
const declaredOutputs = section(yml, 'outputs')
const markedFor = (mark: string): string[] => [...declaredInputs].filter(([, input]) => input.description.startsWith(`[${mark}]`)).map(([name]) => name)

let workspace: string
const saved = { ...process.env }

function setInputs(values: Record<string, string>): void {
  for (const [name, value] of Object.entries(values)) process.env[`INPUT_${name.toUpperCase()}`] = value
}

beforeEach(() => {
  for (const key of Object.keys(process.env)) if (/^(INPUT_|CONTREE_|TOGETHER_)/.test(key)) delete process.env[key]
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'inputs-providers-'))
  process.env.GITHUB_WORKSPACE = workspace
  // core.setSecret prints ::add-mask::; keep it out of the test output.
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
})
afterEach(() => {
  vi.restoreAllMocks()
  process.env = { ...saved }
  fs.rmSync(workspace, { recursive: true, force: true })
})

const contree = { provider: 'contree', token: 'contree-token', 'api-url': 'https://contree.example.com', image: 'tag:busybox', run: 'true' }
const together = { provider: 'together', token: 'together-key', 'api-url': 'https://api.bartender.example.com', image: '@base', run: 'true' }

/** A value other than the input's default that gets past any check made before the provider's. */
function someValue(name: string): string {
  const special: Record<string, string> = { secrets: 'id=value', cache: 'false', 'keep-alive': 'true', disposable: 'true', 'output-limit': '1MiB' }
  return special[name] ?? 'x1'
}

describe('provider-only inputs', () => {
  it('action.yml marks some inputs for each provider', () => {
    expect(markedFor('ConTree')).toEqual(expect.arrayContaining(['project', 'disposable', 'registry']))
    expect(markedFor('Together')).toEqual(expect.arrayContaining(['builder-url', 'keep-alive', 'ttl']))
  })

  it.each(markedFor('ConTree'))('[ConTree] %s is refused on Together, naming the input', (name) => {
    setInputs({ ...together, [name]: someValue(name) })
    expect(() => getInputs()).toThrow(new RegExp(`^Input '${name}': is a ConTree input; it has no meaning with provider: together$`))
  })

  it.each(markedFor('Together'))('[Together] %s is refused on ConTree, naming the input', (name) => {
    setInputs({ ...contree, [name]: someValue(name) })
    expect(() => getInputs()).toThrow(new RegExp(`^Input '${name}': is a Together Sandbox input; it has no meaning with provider: contree$`))
  })

  it('an input left at the default action.yml gives it (the runner always passes it) is not refused', () => {
    setInputs({ ...together, cache: 'true', disposable: 'false', 'output-limit': '16MiB' })
    expect(getInputs().provider).toBe('together')
    setInputs({ ...contree, 'keep-alive': 'false' })
    expect(getInputs().provider).toBe('contree')
  })

  it('no input without a mark is refused as the other provider\'s', () => {
    const common = [...declaredInputs.keys()].filter((name) => !markedFor('ConTree').includes(name) && !markedFor('Together').includes(name))
    for (const base of [contree, together]) {
      for (const name of common) {
        if (name in base) continue
        setInputs({ ...base, [name]: someValue(name) })
        let message = ''
        try {
          getInputs()
        } catch (error) {
          message = (error as Error).message
        }
        expect(message, `${name} on ${base.provider}`).not.toMatch(/has no meaning with provider/)
        delete process.env[`INPUT_${name.toUpperCase()}`]
      }
    }
  })
})

describe('environment fallbacks, per provider', () => {
  it('ConTree: CONTREE_TOKEN, CONTREE_URL and CONTREE_PROJECT', () => {
    setInputs({ image: 'tag:busybox', run: 'true' })
    const inputs = getInputs({ ...process.env, CONTREE_TOKEN: 'c-env', CONTREE_URL: 'https://contree.internal/api/', CONTREE_PROJECT: 'p-1', TOGETHER_API_KEY: 't-env', TOGETHER_BASE_URL: 'https://api.bartender.example.com' })
    expect(inputs).toMatchObject({ provider: 'contree', token: 'c-env', apiUrl: 'https://contree.internal/api', project: 'p-1' })
  })

  it('Together: TOGETHER_API_KEY and TOGETHER_BASE_URL (the builder derived from it)', () => {
    setInputs({ provider: 'together', image: '@base', run: 'true' })
    const inputs = getInputs({ ...process.env, TOGETHER_API_KEY: 't-env', TOGETHER_BASE_URL: 'https://api.bartender.example.com', CONTREE_TOKEN: 'c-env', CONTREE_URL: 'https://contree.internal', CONTREE_PROJECT: 'p-1' })
    expect(inputs).toMatchObject({ provider: 'together', token: 't-env', apiUrl: 'https://api.bartender.example.com' })
    expect(inputs.together).toMatchObject({ token: 't-env', apiUrl: 'https://api.bartender.example.com', builderUrl: 'https://builder.example.com' })
    expect(inputs.project).toBeUndefined()
  })

  it('inputs win over the environment', () => {
    setInputs({ ...together, 'api-url': 'https://api.bartender.other.com' })
    const inputs = getInputs({ ...process.env, TOGETHER_API_KEY: 't-env', TOGETHER_BASE_URL: 'https://api.bartender.example.com' })
    expect(inputs.together).toMatchObject({ token: 'together-key', apiUrl: 'https://api.bartender.other.com' })
  })

  it('never takes the other provider\'s token: the error names the right variable', () => {
    setInputs({ provider: 'together', image: '@base', run: 'true' })
    expect(() => getInputs({ ...process.env, CONTREE_TOKEN: 'c-env' })).toThrow(/^Input 'token': is required: .*TOGETHER_API_KEY/)
    setInputs({ provider: 'contree', image: 'tag:busybox' })
    expect(() => getInputs({ ...process.env, TOGETHER_API_KEY: 't-env' })).toThrow(/^Input 'token': is required: .*CONTREE_TOKEN/)
  })
})

/** Every `.ts` file under src/, with its text. */
function sources(): { file: string; text: string }[] {
  const files: { file: string; text: string }[] = []
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.name.endsWith('.ts')) files.push({ file: path.relative(REPO_ROOT, full), text: fs.readFileSync(full, 'utf8') })
    }
  }
  walk(path.join(REPO_ROOT, 'src'))
  return files
}

/** Input names asked of the runner while `read` runs (core.getInput reads process.env.INPUT_<NAME>). */
function inputsAskedFor(read: () => void): Set<string> {
  const asked = new Set<string>()
  const env = process.env
  process.env = new Proxy(env, {
    get(target, key, receiver) {
      if (typeof key === 'string' && key.startsWith('INPUT_')) asked.add(key.slice('INPUT_'.length).toLowerCase())
      return Reflect.get(target, key, receiver)
    },
  })
  try {
    read()
  } catch {
    // Only what was asked matters here.
  } finally {
    process.env = env
  }
  return asked
}

describe('action.yml declares exactly what the code reads and sets', () => {
  it('inputs: the names read literally anywhere in src/, plus those read by name lists while parsing for either provider', () => {
    const read = new Set<string>()
    for (const { text } of sources()) {
      for (const match of text.matchAll(/\b(?:getInput|getBooleanInput|raw|parseBoolean)\('([a-z][a-z-]*)'/g)) read.add(match[1] as string)
    }
    setInputs({ ...contree, dockerfile: 'Dockerfile' })
    fs.writeFileSync(path.join(workspace, 'Dockerfile'), 'FROM busybox\n')
    for (const name of inputsAskedFor(() => getInputs())) read.add(name)
    setInputs({ ...together })
    for (const name of inputsAskedFor(() => getInputs())) read.add(name)
    expect([...read].sort()).toEqual([...declaredInputs.keys()].sort())
  })

  it('every default in the code is declared, and every declared input has a description', () => {
    for (const name of Object.keys(INPUT_DEFAULTS)) expect(declaredInputs.has(name), name).toBe(true)
    for (const [name, input] of declaredInputs) expect(input.description, name).not.toBe('')
    for (const [name, output] of declaredOutputs) expect(output.description, name).not.toBe('')
  })

  it('outputs: every name set by main or a provider, and nothing else', () => {
    const set = new Set<string>()
    const dynamic: string[] = []
    for (const { file, text } of sources()) {
      for (const line of text.split('\n')) {
        if (/^\s*(\*|\/\/)/.test(line)) continue
        for (const match of line.matchAll(/setOutput\(([^,]+),/g)) {
          const literal = /^'([a-z][a-z-]*)'$/.exec((match[1] as string).trim())
          if (literal) set.add(literal[1] as string)
          else dynamic.push(`${file}: ${(match[1] as string).trim()}`)
        }
        // Provider outputs, set by main from a provider's `outputs` record.
        for (const match of line.matchAll(/\boutputs(?:\s*:\s*Record<string, string>\s*=|\s*:)\s*[^{;]*?\{([^{}]*)\}/g)) {
          for (const key of (match[1] as string).matchAll(/(?:'([a-z][a-z-]*)'|\b([a-z][a-z-]*))\s*:/g)) set.add((key[1] ?? key[2]) as string)
        }
        for (const match of line.matchAll(/\boutputs\['([a-z][a-z-]*)'\]\s*=/g)) set.add(match[1] as string)
      }
    }
    // The names set without a literal, each accounted for: a provider's outputs record (collected
    // above), and a cancelled run's id (ConTree: operation-uuid; Together: the run's own work, its
    // sandbox or the command in it), and a preview's outputs record (its literal keys collected above).
    expect(dynamic.sort()).toEqual([
      "src/main.ts: name",
      "src/main.ts: name",
      "src/main.ts: run.provider === 'contree' ? 'operation-uuid' : `${run.kind}-id`",
      'src/modes/preview.ts: key',
    ])
    for (const name of ['operation-uuid', 'sandbox-id', 'exec-id']) set.add(name)
    expect([...set].sort()).toEqual([...declaredOutputs.keys()].sort())
  })
})

describe('README.md tables', () => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8')

  /** Rows of the table under a `## heading`: names (every `code` span of the first cell) and the provider cell. */
  function table(heading: string): Map<string, string> {
    const start = readme.indexOf(`\n## ${heading}\n`)
    expect(start, heading).toBeGreaterThanOrEqual(0)
    const body = readme.slice(start + 1, readme.indexOf('\n## ', start + 1))
    const rows = new Map<string, string>()
    for (const line of body.split('\n').filter((l) => l.startsWith('| `'))) {
      const [first, provider] = line.split(' | ')
      for (const name of (first as string).matchAll(/`([a-z-]+)`/g)) rows.set(name[1] as string, (provider as string).trim())
    }
    return rows
  }

  const providerOf = (description: string): string => (description.startsWith('[ConTree]') ? 'ConTree' : description.startsWith('[Together]') ? 'Together' : 'common')

  it.each([
    ['Inputs', declaredInputs],
    ['Outputs', declaredOutputs],
  ] as const)('%s: every name action.yml declares, with the provider it marks', (heading, declared) => {
    const rows = table(heading)
    expect([...rows.keys()].sort()).toEqual([...declared.keys()].sort())
    for (const [name, entry] of declared) expect(rows.get(name), name).toBe(providerOf(entry.description))
  })
})
