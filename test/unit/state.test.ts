import { afterEach, describe, expect, it } from 'vitest'
import { readLiveWork, workKey, type LiveWork } from '../../src/state.ts'

const saved = { ...process.env }
afterEach(() => {
  process.env = { ...saved }
})

function withState(value: string): void {
  process.env.STATE_remoteWork = value
}

const contree: LiveWork = { provider: 'contree', kind: 'operation', id: 'op-1', endpoint: 'https://c.example', label: 'run', state: 'live' }
const together: LiveWork = { provider: 'together', kind: 'sandbox', id: 'sb-1', endpoint: 'https://t.example', label: 'run', state: 'cancel-requested' }

describe('readLiveWork', () => {
  it('reads entries of both providers, as main wrote them', () => {
    withState(JSON.stringify([contree, together]))
    expect(readLiveWork()).toEqual({ work: [contree, together] })
  })

  it('is empty without state, and says why for malformed state', () => {
    delete process.env.STATE_remoteWork
    expect(readLiveWork()).toEqual({ work: [] })
    withState('{not json')
    expect(readLiveWork().problem).toMatch(/not valid JSON/)
    withState('{"a":1}')
    expect(readLiveWork().problem).toMatch(/not a list/)
  })

  it('skips entries of unknown providers or kinds, or without an id, and says so', () => {
    withState(JSON.stringify([contree, { ...contree, provider: 'other' }, { ...contree, kind: 'vm' }, { ...contree, id: '' }]))
    const { work, problem } = readLiveWork()
    expect(work).toEqual([contree])
    expect(problem).toMatch(/malformed/)
  })

  it('keys work by provider, kind and id (ids are unique only within them)', () => {
    expect(workKey(contree)).not.toBe(workKey({ ...contree, provider: 'together' }))
    expect(workKey(contree)).not.toBe(workKey({ ...contree, kind: 'build' }))
  })
})
