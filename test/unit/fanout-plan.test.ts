import { describe, expect, it } from 'vitest'
import { InputError } from '../../src/errors.ts'
import { MAX_TASKS, planFanout, type FanoutInputs } from '../../src/fanout/plan.ts'

const none: FanoutInputs = { runs: '', shards: '', maxParallel: '', failFast: false }

describe('planFanout', () => {
  it('is no fan-out without runs or shards (a plain run stays a single run)', () => {
    expect(planFanout(none, { command: 'make', shell: true }, {})).toBeUndefined()
    expect(planFanout(none, undefined, {})).toBeUndefined()
  })

  it('makes one task per command line of runs, skipping blanks and comments, with the env input', () => {
    const plan = planFanout({ ...none, runs: '\n  npm run lint  \n# not this one\n\nnpm test -- --ci\r\nmake docs\n' }, undefined, { CI: 'true' })
    expect(plan).toEqual({
      maxParallel: 4,
      failFast: false,
      tasks: [
        { index: 0, label: 'run 1 of 3', command: 'npm run lint', shell: true, env: { CI: 'true' } },
        { index: 1, label: 'run 2 of 3', command: 'npm test -- --ci', shell: true, env: { CI: 'true' } },
        { index: 2, label: 'run 3 of 3', command: 'make docs', shell: true, env: { CI: 'true' } },
      ],
    })
  })

  it('repeats run over shards with SHARD_INDEX (0-based) and SHARD_COUNT in each env', () => {
    const plan = planFanout({ ...none, shards: '3', maxParallel: '2', failFast: true }, { command: 'pytest --shard-id=$SHARD_INDEX', shell: true }, { A: '1' })
    expect(plan?.maxParallel).toBe(2)
    expect(plan?.failFast).toBe(true)
    expect(plan?.tasks).toEqual([0, 1, 2].map((index) => ({
      index,
      label: `shard ${index} of 3`,
      command: 'pytest --shard-id=$SHARD_INDEX',
      shell: true,
      env: { A: '1', SHARD_INDEX: String(index), SHARD_COUNT: '3' },
    })))
  })

  it('keeps an argv run (shell: false) as an argv in every shard, each with its own copy', () => {
    const plan = planFanout({ ...none, shards: '2' }, { command: 'make', args: ['test'], shell: false }, {})
    expect(plan?.tasks.map((task) => [task.command, task.args, task.shell])).toEqual([
      ['make', ['test'], false],
      ['make', ['test'], false],
    ])
    expect(plan?.tasks[0]?.args).not.toBe(plan?.tasks[1]?.args)
  })

  const refusals: [string, FanoutInputs, Parameters<typeof planFanout>[1], Record<string, string>, string, RegExp][] = [
    ['runs with run', { ...none, runs: 'a' }, { command: 'b', shell: true }, {}, 'runs', /cannot be used together with run/],
    ['runs with shards', { ...none, runs: 'a', shards: '2' }, undefined, {}, 'shards', /cannot be used with runs/],
    ['shards without run', { ...none, shards: '2' }, undefined, {}, 'shards', /needs run/],
    ['shards of zero', { ...none, shards: '0' }, { command: 'b', shell: true }, {}, 'shards', /"0" is not a number of shards \(a whole number from 1 to 256\)/],
    ['shards not a number', { ...none, shards: 'four' }, { command: 'b', shell: true }, {}, 'shards', /"four"/],
    ['too many shards', { ...none, shards: String(MAX_TASKS + 1) }, { command: 'b', shell: true }, {}, 'shards', /257/],
    ['shards of 1.5', { ...none, shards: '1.5' }, { command: 'b', shell: true }, {}, 'shards', /"1.5"/],
    ['only comments', { ...none, runs: '# a\n\n# b' }, undefined, {}, 'runs', /has no command/],
    ['a continued line', { ...none, runs: 'make \\\n  test' }, undefined, {}, 'runs', /line 1 "make \\" ends with \\/],
    ['too many runs', { ...none, runs: Array.from({ length: MAX_TASKS + 1 }, (_, i) => `echo ${i}`).join('\n') }, undefined, {}, 'runs', /257 commands/],
    ['max-parallel 0', { ...none, runs: 'a', maxParallel: '0' }, undefined, {}, 'max-parallel', /"0" is not a number of runs at once/],
    ['max-parallel bad, even without fan-out', { ...none, maxParallel: 'lots' }, undefined, {}, 'max-parallel', /"lots"/],
    ['env setting SHARD_INDEX', { ...none, shards: '2' }, { command: 'b', shell: true }, { SHARD_INDEX: '9' }, 'env', /sets SHARD_INDEX/],
  ]
  for (const [name, raw, run, env, input, message] of refusals) {
    it(`refuses ${name}, naming ${input}`, () => {
      let error: unknown
      try {
        planFanout(raw, run, env)
      } catch (caught) {
        error = caught
      }
      expect(error).toBeInstanceOf(InputError)
      expect((error as InputError).input).toBe(input)
      expect((error as InputError).message).toMatch(message)
    })
  }
})
