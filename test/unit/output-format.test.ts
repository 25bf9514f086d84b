import { describe, expect, it } from 'vitest'
import { escapeCommandData, escapeCommandProperty, formatDuration, statusSymbol } from '../../src/output/format.ts'
import { guardLeadingCommand, sanitizeLine } from '../../src/output/line-sanitizer.ts'

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [850, '850 ms'],
    [999.4, '999 ms'],
    [999.6, '1.0 s'],
    [3200, '3.2 s'],
    [59_940, '59.9 s'],
    [59_960, '1 m 00 s'],
    [125_000, '2 m 05 s'],
    [3_599_400, '59 m 59 s'],
    [3_725_000, '1 h 02 m'],
    [-5, '0 ms'],
    [Number.NaN, '0 ms'],
  ])('%s ms → %s', (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected)
  })
})

describe('statusSymbol', () => {
  it('maps operation statuses and build-step outcomes, case-insensitively', () => {
    expect(statusSymbol('SUCCESS')).toBe('✓')
    expect(statusSymbol('built')).toBe('✓')
    expect(statusSymbol('FAILED')).toBe('✗')
    expect(statusSymbol('failed')).toBe('✗')
    expect(statusSymbol('CANCELLED')).toBe('⊘')
    expect(statusSymbol('cached')).toBe('♻')
    expect(statusSymbol('skipped')).toBe('–')
    expect(statusSymbol('EXECUTING')).toBe('…')
    expect(statusSymbol('whatever')).toBe('•')
  })
})

describe('workflow command escaping', () => {
  it('escapes data like the runner unescapes it (% first)', () => {
    expect(escapeCommandData('50%\r\nx%0A')).toBe('50%25%0D%0Ax%250A')
  })
  it('escapes properties additionally for : and ,', () => {
    expect(escapeCommandProperty('a:b,c%\n')).toBe('a%3Ab%2Cc%25%0A')
  })
})

describe('line sanitiser', () => {
  it('neutralises the legacy marker, controls and a leading command, and is idempotent', () => {
    const once = sanitizeLine('  ::error::x ##[group]y \x00\x1b[1m\t', 'abcdefgh12')
    expect(once).toBe('  :\u200B:error::x #\u200B#[group]y \u2400\x1b[1m\t')
    expect(sanitizeLine(once, 'abcdefgh12')).toBe(once)
  })
  it('leaves ordinary lines untouched (same string)', () => {
    const line = 'compiling src/main.ts: ok'
    expect(guardLeadingCommand(line)).toBe(line)
    expect(sanitizeLine(line)).toBe(line)
  })
})
