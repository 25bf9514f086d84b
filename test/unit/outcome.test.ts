import { describe, expect, it } from 'vitest'
import { judge, statusLine } from '../../src/outcome.ts'
import type { OperationOutcome } from '../../src/providers/types.ts'

const base: OperationOutcome = { operationId: 'op-1', status: 'SUCCESS', exitCode: 0, timedOut: false, error: null, resultImage: 'img', durationMs: 1200 }

describe('judge', () => {
  const cases: [string, Partial<OperationOutcome>, { expectsExitCode?: boolean; timeoutSeconds?: number }, RegExp | 'ok'][] = [
    ['success with exit 0', {}, { expectsExitCode: true }, 'ok'],
    ['non-zero exit is the command failing, not the service', { exitCode: 3 }, { expectsExitCode: true }, /exited with code 3; the sandbox itself ran fine/],
    ['a timeout names the limit', { exitCode: null, timedOut: true }, { expectsExitCode: true, timeoutSeconds: 5 }, /timed out after 5 s/],
    ['a command killed by a signal fails', { exitCode: null }, { expectsExitCode: true }, /killed by a signal/],
    ['an import has no exit code to report', { exitCode: null }, {}, 'ok'],
    ['FAILED carries the service error', { status: 'FAILED', error: 'no capacity' }, { expectsExitCode: true }, /FAILED: no capacity/],
    ['FAILED without a reason says so', { status: 'FAILED' }, {}, /FAILED: no reason given/],
    ['CANCELLED is never success', { status: 'CANCELLED', exitCode: 0 }, { expectsExitCode: true }, /was cancelled/],
  ]
  it.each(cases)('%s', (_name, change, options, expected) => {
    const verdict = judge({ ...base, ...change }, 'The command', options)
    if (expected === 'ok') expect(verdict.ok).toBe(true)
    else {
      expect(verdict.ok).toBe(false)
      if (!verdict.ok) {
        expect(verdict.message).toMatch(expected)
        expect(verdict.message).toContain('op-1')
      }
    }
  })

  it('tells a command failure from a service failure', () => {
    const command = judge({ ...base, exitCode: 2 }, 'x', { expectsExitCode: true })
    const service = judge({ ...base, status: 'FAILED' }, 'x')
    expect(!command.ok && command.kind).toBe('command')
    expect(!service.ok && service.kind).toBe('service')
  })
})

describe('statusLine', () => {
  it('summarises the outcome on one line, in words that never call a failed command a success', () => {
    expect(statusLine({ ...base, exitCode: 3 }, 'run', '1.2 s', { expectsExitCode: true })).toBe('✗ run: failed with exit code 3 in 1.2 s (operation op-1)')
    expect(statusLine(base, 'run', '1.2 s')).toBe('✓ run: exit code 0 in 1.2 s (operation op-1)')
  })

  it.each([
    ['a timeout', { exitCode: null, timedOut: true }, { expectsExitCode: true, timeoutSeconds: 5 }, '✗ run: timed out after 5 s in'],
    ['a kill', { exitCode: null }, { expectsExitCode: true }, '✗ run: killed by a signal in'],
    ['an import', { exitCode: null }, {}, '✓ run: done in'],
    ['a service failure', { status: 'FAILED', error: 'no capacity' }, {}, '✗ run: failed on the service: no capacity in'],
    ['a cancellation', { status: 'CANCELLED' }, {}, '✗ run: cancelled in'],
  ] as const)('words %s', (_name, change, options, expected) => {
    const line = statusLine({ ...base, ...change } as OperationOutcome, 'run', '1.2 s', options)
    expect(line.startsWith(expected)).toBe(true)
    expect(line).not.toContain('SUCCESS')
  })
})
