import { describe, expect, it } from 'vitest'
import { DEFAULT_SHELL, buildRunSpec, shellJoin } from '../../src/build/run-command.ts'

describe('buildRunSpec', () => {
  it.each([
    { name: 'no user, shell form', user: undefined, input: { form: 'shell', text: 'make' } as const, spec: { command: 'make', shell: true } },
    { name: 'user 0', user: '0', input: { form: 'shell', text: 'make' } as const, spec: { command: 'make', shell: true } },
    { name: 'user root:root', user: 'root:root', input: { form: 'shell', text: 'make' } as const, spec: { command: 'make', shell: true } },
    {
      name: 'named user, exec form',
      user: 'app',
      input: { form: 'exec', argv: ['ls', '-l', 'my dir'] } as const,
      spec: { command: 'su', args: ['-s', '/bin/sh', '-c', "ls -l 'my dir'", 'app'], shell: false },
    },
    {
      name: 'numeric uid without group keeps gid 0',
      user: '1000',
      input: { form: 'exec', argv: ['id'] } as const,
      spec: { command: 'setpriv', args: ['--reuid=1000', '--clear-groups', '--', 'id'], shell: false },
    },
    {
      name: 'name:group uses setpriv with names',
      user: 'app:staff',
      input: { form: 'shell', text: 'id' } as const,
      spec: { command: 'setpriv', args: ['--reuid=app', '--regid=staff', '--clear-groups', '--', '/bin/sh', '-c', 'id'], shell: false },
    },
  ])('$name', ({ user, input, spec }) => {
    expect(buildRunSpec(input, DEFAULT_SHELL, user)).toEqual(spec)
  })

  it('custom SHELL under a named user is joined into the su command', () => {
    expect(buildRunSpec({ form: 'shell', text: 'a | b' }, ['/bin/bash', '-o', 'pipefail', '-c'], 'app')).toEqual({
      command: 'su', args: ['-s', '/bin/sh', '-c', "/bin/bash -o pipefail -c 'a | b'", 'app'], shell: false,
    })
  })
})

describe('shellJoin', () => {
  it.each([
    { name: 'safe words', argv: ['a', '-b', 'c=d/e.f'], out: 'a -b c=d/e.f' },
    { name: 'spaces', argv: ['a b'], out: "'a b'" },
    { name: 'single quote', argv: ["it's"], out: `'it'\\''s'` },
    { name: 'dollar is not expanded', argv: ['$HOME'], out: "'$HOME'" },
    { name: 'empty word', argv: [''], out: "''" },
  ])('$name', ({ argv, out }) => {
    expect(shellJoin(argv)).toBe(out)
  })
})
