import { describe, expect, it } from 'vitest'
import { needsUserDb, parseGroup, parsePasswd, resolveChown, resolveUser, UserLookupError } from '../../src/providers/contree/build/users.ts'

const db = {
  passwd: parsePasswd('root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\njovyan:x:1001:100::/home/jovyan:/bin/bash\n# comment\nbroken\n'),
  group: parseGroup('root:x:0:\nnode:x:1000:\nusers:x:100:\ndocker:x:999:node,jovyan\naudio:x:29:node\n'),
}

describe('resolveUser (USER)', () => {
  it.each([
    { spec: '', expected: { uid: 0, gid: 0, groups: [] } },
    { spec: 'node', expected: { uid: 1000, gid: 1000, groups: [29, 999] } },
    { spec: '1000', expected: { uid: 1000, gid: 1000, groups: [29, 999] } },
    { spec: '4242', expected: { uid: 4242, gid: 0, groups: [] } },
    { spec: 'jovyan:docker', expected: { uid: 1001, gid: 999, groups: [] } },
    { spec: '1001:5', expected: { uid: 1001, gid: 5, groups: [] } },
  ])('$spec', ({ spec, expected }) => {
    expect(resolveUser(spec, db)).toEqual(expected)
  })

  it('an unknown name is an error in Docker\'s words', () => {
    expect(() => resolveUser('ghost', db)).toThrow(UserLookupError)
    expect(() => resolveUser('ghost', db)).toThrow('unable to find user ghost: no matching entries in passwd file')
    expect(() => resolveUser('node:nogroup', db)).toThrow('unable to find group nogroup: no matching entries in group file')
  })
})

describe('resolveChown (COPY --chown)', () => {
  it('a user without a group takes gid = uid; names come from the image files', () => {
    expect(resolveChown('node', db)).toEqual({ uid: 1000, gid: 1000 })
    expect(resolveChown('jovyan', db)).toEqual({ uid: 1001, gid: 1001 })
    expect(resolveChown('1001:users', db)).toEqual({ uid: 1001, gid: 100 })
    expect(resolveChown('5', db)).toEqual({ uid: 5, gid: 5 })
  })
})

describe('needsUserDb', () => {
  it('numeric pairs and root need no lookup; a bare numeric USER does (its primary group)', () => {
    expect(needsUserDb('1000:1000', 'user')).toBe(false)
    expect(needsUserDb('', 'user')).toBe(false)
    expect(needsUserDb('1000', 'user')).toBe(true)
    expect(needsUserDb('1000', 'chown')).toBe(false)
    expect(needsUserDb('node', 'chown')).toBe(true)
  })
})
