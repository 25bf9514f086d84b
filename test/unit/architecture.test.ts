/**
 * The shape the design asks for, checked on the sources: no two modules import each other (directly
 * or through a cycle), and the entry points reach a vendor only through the provider factory.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../helpers/run-action.ts'

const SRC = path.join(REPO_ROOT, 'src')

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    return entry.isDirectory() ? sources(full) : entry.name.endsWith('.ts') ? [full] : []
  })
}

/** Relative imports of a module (type-only imports included: they still tie the modules together). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8')
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((match) => match[1] as string)
  return specs.map((spec) => path.resolve(path.dirname(file), spec))
}

const graph = new Map(sources(SRC).map((file) => [file, importsOf(file)]))
const rel = (file: string): string => path.relative(SRC, file)

describe('module structure', () => {
  it('has no import cycles', () => {
    const cycles: string[] = []
    const state = new Map<string, 'visiting' | 'done'>()
    const stack: string[] = []
    const visit = (file: string): void => {
      state.set(file, 'visiting')
      stack.push(file)
      for (const next of graph.get(file) ?? []) {
        if (!graph.has(next)) continue
        if (state.get(next) === 'visiting') cycles.push([...stack.slice(stack.indexOf(next)), next].map(rel).join(' → '))
        else if (!state.has(next)) visit(next)
      }
      stack.pop()
      state.set(file, 'done')
    }
    for (const file of graph.keys()) if (!state.has(file)) visit(file)
    expect(cycles).toEqual([])
  })

  it('lets main and post reach a vendor only through the provider factory', () => {
    for (const entry of ['main.ts', 'post.ts', 'index.ts']) {
      const vendorImports = (graph.get(path.join(SRC, entry)) ?? []).map(rel).filter((target) => /^providers\/(contree|together)\//.test(target))
      expect(vendorImports, entry).toEqual([])
    }
  })

  it('keeps each vendor inside its own folder: no provider imports another', () => {
    for (const [file, targets] of graph) {
      const own = /^providers\/(contree|together)\//.exec(rel(file))?.[1]
      if (!own) continue
      const other = own === 'contree' ? 'together' : 'contree'
      expect(targets.map(rel).filter((target) => target.startsWith(`providers/${other}/`)), rel(file)).toEqual([])
    }
  })
})
