/**
 * The repository's own workflows run the action as users do (`uses: ./`): every input they pass must be
 * an input of action.yml and every output they read one of its outputs, or the runner would only warn
 * (an unknown input) or hand back an empty string (an unknown output), and CI would test nothing.
 * Read by indentation, which the workflow files keep regular (no YAML library is a dependency).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../helpers/run-action.ts'

const indent = (line: string): number => line.length - line.trimStart().length

/** The keys one level under `section:` at the top of action.yml. */
function actionKeys(section: 'inputs' | 'outputs'): Set<string> {
  const lines = fs.readFileSync(path.join(REPO_ROOT, 'action.yml'), 'utf8').split('\n')
  const start = lines.indexOf(`${section}:`)
  const keys = new Set<string>()
  for (const line of lines.slice(start + 1)) {
    if (line.trim() !== '' && indent(line) === 0) break
    const key = /^ {2}([a-z0-9-]+):/.exec(line)?.[1]
    if (key) keys.add(key)
  }
  return keys
}

interface LocalStep {
  file: string
  id?: string
  inputs: string[]
}

/** Every step of a workflow that uses the action in this repository, with its id and `with:` keys. */
function localSteps(file: string): LocalStep[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  const steps: LocalStep[] = []
  for (let i = 0; i < lines.length; i++) {
    const item = /^(\s*)- /.exec(lines[i] as string)
    if (!item) continue
    const depth = (item[1] as string).length
    let end = i + 1
    while (end < lines.length && ((lines[end] as string).trim() === '' || indent(lines[end] as string) > depth)) end++
    const body = [(lines[i] as string).replace('- ', '  '), ...lines.slice(i + 1, end)]
    if (!body.some((line) => /^\s*uses: \.\/\s*$/.test(line) && indent(line) === depth + 2)) continue
    const id = body.map((line) => /^\s*id: (\S+)\s*$/.exec(line)).find((m) => m && indent(m.input) === depth + 2)?.[1]
    const withAt = body.findIndex((line) => line.trim() === 'with:' && indent(line) === depth + 2)
    const inputs: string[] = []
    if (withAt >= 0) {
      for (const line of body.slice(withAt + 1)) {
        if (line.trim() === '') continue
        if (indent(line) <= depth + 2) break
        const key = indent(line) === depth + 4 ? /^\s*([A-Za-z0-9_-]+):/.exec(line)?.[1] : undefined
        if (key) inputs.push(key)
      }
    }
    steps.push({ file: path.basename(file), ...(id ? { id } : {}), inputs })
  }
  return steps
}

const WORKFLOWS = path.join(REPO_ROOT, '.github', 'workflows')
const files = fs.readdirSync(WORKFLOWS).filter((name) => /\.ya?ml$/.test(name)).map((name) => path.join(WORKFLOWS, name))

describe('the repository workflows', () => {
  const inputs = actionKeys('inputs')
  const outputs = actionKeys('outputs')

  it('find the action steps they run (the reader works)', () => {
    const all = files.flatMap(localSteps)
    const usesLines = files.flatMap((file) => fs.readFileSync(file, 'utf8').split('\n')).filter((line) => /^\s*(- )?uses: \.\/\s*$/.test(line))
    expect(all.length).toBe(usesLines.length)
    expect(all.length).toBeGreaterThan(5)
    expect(all.some((step) => step.inputs.includes('shards'))).toBe(true)
    expect(all.some((step) => step.inputs.includes('mode'))).toBe(true)
  })

  it.each(files.map((file) => [path.basename(file), file]))('%s passes only inputs action.yml declares', (_name, file) => {
    const unknown = localSteps(file).flatMap((step) => step.inputs.filter((input) => !inputs.has(input)).map((input) => `${step.id ?? '(no id)'}: ${input}`))
    expect(unknown).toEqual([])
  })

  it.each(files.map((file) => [path.basename(file), file]))('%s reads only outputs action.yml declares, of action steps it has', (_name, file) => {
    const ids = new Set(localSteps(file).flatMap((step) => (step.id ? [step.id] : [])))
    const text = fs.readFileSync(file, 'utf8')
    const wrong = [...text.matchAll(/steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)/g)]
      .filter(([, id, output]) => ids.has(id as string) && !outputs.has(output as string))
      .map(([reference]) => reference)
    expect(wrong).toEqual([])
  })
})
