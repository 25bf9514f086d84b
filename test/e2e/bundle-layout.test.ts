/**
 * What the entry file of the bundle holds. Every run loads dist/index.js whole, so a library that only
 * one mode needs belongs in a chunk of its own, loaded with import() when that mode runs: Octokit
 * (previews writing to GitHub) costs about 6 MB of RSS at start, and @actions/cache about 20 MB.
 * Peak RSS while streaming has a 150 MB goal, and the start is part of it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { BUNDLE } from '../helpers/run-action.ts'

const DIST = path.dirname(BUNDLE)

function chunks(): { name: string; text: string }[] {
  return readdirSync(DIST)
    .filter((name) => name.endsWith('.js') && name !== 'index.js')
    .map((name) => ({ name, text: readFileSync(path.join(DIST, name), 'utf8') }))
}

describe('bundle layout', () => {
  const entry = readFileSync(BUNDLE, 'utf8')

  // Marks of each library's own code (its user agent, its API), not of the code that imports it.
  it('leaves Octokit out of the entry file: only a preview that writes to GitHub loads it', () => {
    const mark = /octokit-core\.js/
    expect(mark.test(entry), 'Octokit code in dist/index.js').toBe(false)
    expect(chunks().filter(({ text }) => mark.test(text)).length).toBe(1)
  })

  it('leaves @actions/cache out of the entry file: only a run that caches images loads it', () => {
    const mark = /reserveCache/
    expect(mark.test(entry), '@actions/cache code in dist/index.js').toBe(false)
    expect(chunks().filter(({ text }) => mark.test(text)).length).toBe(1)
  })
})
