import { describe, expect, it } from 'vitest'
import { SubstitutionError, processWord, splitWords } from '../../src/dockerfile/substitute.ts'
import { parseArgDeclarations, parseNameValues } from '../../src/dockerfile/name-values.ts'

const vars = { FOO: '/bar', EMPTY: '', NAME: 'world', 'a.b': 'no' }

describe('processWord', () => {
  it.each([
    // Docker's documented examples (Dockerfile reference, "Environment replacement").
    { name: '$VAR', word: '$FOO', out: '/bar' },
    { name: '${VAR}', word: '${FOO}', out: '/bar' },
    { name: '${VAR} next to text', word: '${FOO}_x', out: '/bar_x' },
    { name: '$VAR stops at non-name characters', word: '$FOO/baz', out: '/bar/baz' },
    { name: 'unknown variable is empty', word: 'a$NOPE-b', out: 'a-b' },
    { name: '`\\$` keeps a literal $', word: '\\$FOO', out: '$FOO' },
    { name: '`\\${` keeps a literal ${', word: '\\${FOO}', out: '${FOO}' },
    { name: 'lone $ is literal', word: 'a $ b', out: 'a $ b' },
    { name: 'trailing $ is literal', word: 'cost$', out: 'cost$' },
    { name: ':- uses the value when set', word: '${FOO:-x}', out: '/bar' },
    { name: ':- uses the word when unset', word: '${NOPE:-x}', out: 'x' },
    { name: ':- uses the word when empty', word: '${EMPTY:-x}', out: 'x' },
    { name: '- keeps an empty value', word: '${EMPTY-x}', out: '' },
    { name: '- uses the word when unset', word: '${NOPE-x}', out: 'x' },
    { name: ':+ gives the word when set', word: '${FOO:+x}', out: 'x' },
    { name: ':+ gives empty when unset', word: '${NOPE:+x}', out: '' },
    { name: ':+ gives empty when empty', word: '${EMPTY:+x}', out: '' },
    { name: '+ gives the word when set but empty', word: '${EMPTY+x}', out: 'x' },
    { name: 'nested variable in a default', word: '${NOPE:-$NAME}', out: 'world' },
    { name: 'nested modifier in a default', word: '${NOPE:-${ALSO:-deep}}', out: 'deep' },
    { name: 'default with spaces and quotes', word: '${NOPE:-"a b"}', out: 'a b' },
    { name: 'single quotes are literal', word: "'$FOO'", out: '$FOO' },
    { name: 'double quotes substitute', word: '"$FOO"', out: '/bar' },
    { name: 'double quotes keep single quotes', word: `"it's $NAME"`, out: "it's world" },
    { name: 'escaped quote inside double quotes', word: '"a\\"b"', out: 'a"b' },
    { name: 'escaped $ inside double quotes', word: '"\\$FOO"', out: '$FOO' },
    { name: 'other escapes inside double quotes are kept', word: '"a\\nb"', out: 'a\\nb' },
    { name: 'escape outside quotes drops the escape', word: 'a\\ b', out: 'a b' },
    { name: 'quote removal', word: 'he"ll"o', out: 'hello' },
    { name: 'names end at a dot', word: '$a.b', out: '.b' },
    { name: 'positional parameter is empty', word: '$1x', out: 'x' },
  ])('$name: $word → $out', ({ word, out }) => {
    expect(processWord(word, vars)).toBe(out)
  })

  it.each([
    { name: 'backtick escapes $', word: '`$FOO', out: '$FOO' },
    { name: 'backslash is ordinary', word: 'c:\\$FOO', out: 'c:\\/bar' },
  ])('with escape=`: $name', ({ word, out }) => {
    expect(processWord(word, vars, '`')).toBe(out)
  })

  it.each([
    { name: 'unterminated ${', word: '${FOO' },
    { name: 'unsupported modifier', word: '${FOO#x}' },
    { name: 'unterminated single quote', word: "'abc" },
    { name: 'unterminated double quote', word: '"abc' },
    { name: ':? on unset', word: '${NOPE:?must be set}' },
    { name: 'empty name', word: '${}' },
  ])('errors: $name', ({ word }) => {
    expect(() => processWord(word, vars)).toThrow(SubstitutionError)
  })

  it(':? passes through a set value', () => {
    expect(processWord('${FOO:?x}', vars)).toBe('/bar')
  })

  it('does not read inherited object properties as variables', () => {
    expect(processWord('$constructor$toString', {})).toBe('')
  })
})

describe('splitWords', () => {
  it.each([
    { name: 'plain', text: 'a b  c', words: ['a', 'b', 'c'] },
    { name: 'quoted spaces stay', text: 'A="x y" B=z', words: ['A="x y"', 'B=z'] },
    { name: 'single quotes', text: "A='x y'", words: ["A='x y'"] },
    { name: 'escaped space', text: 'A=x\\ y B', words: ['A=x\\ y', 'B'] },
  ])('$name', ({ text, words }) => {
    expect(splitWords(text)).toEqual(words)
  })
})

describe('ENV / ARG argument lists', () => {
  it.each([
    { name: 'one pair', args: 'A=1', pairs: [{ name: 'A', value: '1' }] },
    { name: 'several pairs', args: 'A=1 B="two words"', pairs: [{ name: 'A', value: '1' }, { name: 'B', value: '"two words"' }] },
    { name: 'legacy form keeps the rest of the line', args: 'A hello  big world', pairs: [{ name: 'A', value: 'hello  big world' }] },
    { name: 'value with =', args: 'A=b=c', pairs: [{ name: 'A', value: 'b=c' }] },
    { name: 'empty value', args: 'A=', pairs: [{ name: 'A', value: '' }] },
  ])('ENV $name', ({ args, pairs }) => {
    expect(parseNameValues('ENV', args, '\\')).toEqual(pairs)
  })

  it.each([
    { name: 'missing =', args: 'A=1 B' },
    { name: 'legacy without value', args: 'A' },
    { name: 'blank name', args: '=1' },
    { name: 'nothing', args: '' },
  ])('ENV rejects $name', ({ args }) => {
    expect(() => parseNameValues('ENV', args, '\\')).toThrow()
  })

  it('single-quoted ENV values are not substituted, double-quoted are', () => {
    const pairs = parseNameValues('ENV', `A='$FOO' B="$FOO"`, '\\')
    expect(pairs.map((pair) => processWord(pair.value ?? '', vars))).toEqual(['$FOO', '/bar'])
  })

  it('ARG accepts names with and without defaults', () => {
    expect(parseArgDeclarations('A B=2 C="x y"', '\\')).toEqual([{ name: 'A' }, { name: 'B', value: '2' }, { name: 'C', value: '"x y"' }])
  })
})
