import { describe, expect, it } from 'vitest'
import { DockerfileError, parseDockerfile } from '../../src/dockerfile/dockerfile.ts'

function only(text: string) {
  const { instructions } = parseDockerfile(text)
  expect(instructions).toHaveLength(1)
  return instructions[0]!
}

describe('parseDockerfile', () => {
  it.each([
    { name: 'backslash continuation joins without adding spaces', text: 'RUN echo a \\\n  b', args: 'echo a   b' },
    { name: 'trailing whitespace after the escape still continues', text: 'RUN a\\  \nb', args: 'ab' },
    { name: 'comment line inside a continuation is skipped', text: 'RUN a \\\n# note\n  b', args: 'a   b' },
    { name: 'indented comment inside a continuation is skipped', text: 'RUN a \\\n    # note \\\n  b', args: 'a   b' },
    { name: 'empty line inside a continuation is skipped', text: 'RUN a \\\n\n  b', args: 'a   b' },
    { name: 'continuation at end of file ends the instruction', text: 'RUN a \\', args: 'a' },
    { name: 'escape in the middle of a line is kept', text: 'RUN echo \\$HOME', args: 'echo \\$HOME' },
    { name: 'CRLF line endings', text: 'RUN a \\\r\n b\r\n', args: 'a  b' },
  ])('$name', ({ text, args }) => {
    expect(only(text).args).toBe(args)
  })

  it('honours a leading escape directive (backtick)', () => {
    const parsed = parseDockerfile('# escape=`\nFROM alpine\nRUN dir c:\\ `\n  && echo ok\n')
    expect(parsed.escapeChar).toBe('`')
    expect(parsed.directives).toEqual({ escape: '`' })
    expect(parsed.instructions[1]?.args).toBe('dir c:\\   && echo ok')
  })

  it.each([
    { name: 'after a comment', text: '# hello\n# escape=`\nRUN a `\nb' },
    { name: 'after an empty line', text: '\n# escape=`\nRUN a `\nb' },
    { name: 'after an instruction', text: 'FROM x\n# escape=`\nRUN a `\nb' },
  ])('ignores an escape directive $name', ({ text }) => {
    expect(() => parseDockerfile(text)).toThrow(/unknown instruction "B"|unknown instruction "b"/)
  })

  it('rejects an invalid escape character', () => {
    expect(() => parseDockerfile('# escape=x\nFROM a')).toThrow(DockerfileError)
  })

  it.each([
    { name: 'lower-case', text: 'run echo hi', keyword: 'RUN' },
    { name: 'mixed case', text: 'FrOm alpine', keyword: 'FROM' },
    { name: 'leading whitespace', text: '   copy a b', keyword: 'COPY' },
  ])('keywords are case-insensitive ($name)', ({ text, keyword }) => {
    expect(only(text).keyword).toBe(keyword)
  })

  it.each([
    { name: 'RUN JSON array', text: 'RUN ["echo", "a b"]', form: 'exec', argv: ['echo', 'a b'] },
    { name: 'RUN shell text', text: 'RUN echo [a]', form: 'shell', argv: undefined },
    { name: 'invalid JSON falls back to shell', text: "RUN ['echo']", form: 'shell', argv: undefined },
    { name: 'non-string items fall back to shell', text: 'RUN ["a", 1]', form: 'shell', argv: undefined },
    { name: 'COPY JSON array', text: 'COPY ["a b", "/x/"]', form: 'exec', argv: ['a b', '/x/'] },
    { name: 'SHELL JSON', text: 'SHELL ["/bin/bash", "-c"]', form: 'exec', argv: ['/bin/bash', '-c'] },
    { name: 'ENV never exec form', text: 'ENV ["a"]', form: 'shell', argv: undefined },
  ])('form: $name', ({ text, form, argv }) => {
    const instruction = only(text)
    expect(instruction.form).toBe(form)
    expect(instruction.argv).toEqual(argv)
  })

  it.each([
    { name: 'chown and chmod', text: 'COPY --chown=1000:1000 --chmod=0755 a /b', flags: { chown: '1000:1000', chmod: '0755' }, args: 'a /b' },
    { name: 'bare flag', text: 'COPY --link a /b', flags: { link: '' }, args: 'a /b' },
    { name: 'quoted value', text: 'COPY --chown="1:2" a /b', flags: { chown: '1:2' }, args: 'a /b' },
    { name: 'flags stop at the first other word', text: 'RUN echo --no', flags: {}, args: 'echo --no' },
    { name: 'flag before exec form', text: 'COPY --from=build ["a", "/b"]', flags: { from: 'build' }, args: '["a", "/b"]' },
    { name: 'FROM --platform', text: 'FROM --platform=linux/amd64 alpine', flags: { platform: 'linux/amd64' }, args: 'alpine' },
  ])('flags: $name', ({ text, flags, args }) => {
    const instruction = only(text)
    expect(instruction.flags).toEqual(flags)
    expect(instruction.args).toBe(args)
  })

  it('records the line where each instruction starts', () => {
    const text = ['# comment', '', 'FROM alpine', 'RUN a \\', '  b \\', '  c', '', 'COPY x /y'].join('\n')
    expect(parseDockerfile(text).instructions.map((i) => [i.keyword, i.line])).toEqual([
      ['FROM', 3],
      ['RUN', 4],
      ['COPY', 8],
    ])
  })

  it('reports an unknown instruction with its line and a suggestion', () => {
    const text = 'FROM alpine\n\n\n\n\nRUN true\nFORM x'
    expect(() => parseDockerfile(text)).toThrow('Dockerfile:7: unknown instruction "FORM" (did you mean FROM?)')
    try {
      parseDockerfile(text)
    } catch (error) {
      expect(error).toBeInstanceOf(DockerfileError)
      expect((error as DockerfileError).line).toBe(7)
    }
  })

  it('uses the given file name in errors', () => {
    expect(() => parseDockerfile('BOGUS', { fileName: 'docker/app.Dockerfile' })).toThrow(/^docker\/app\.Dockerfile:1: unknown instruction "BOGUS"$/)
  })

  it('reads a heredoc body up to its delimiter, and goes on after it', () => {
    const { instructions } = parseDockerfile('FROM a\nRUN <<EOF\napt-get update\n  echo "$HOME"\nEOF\nRUN true')
    expect(instructions.map((i) => i.keyword)).toEqual(['FROM', 'RUN', 'RUN'])
    expect(instructions[1]?.heredocs).toEqual([{ name: 'EOF', content: 'apt-get update\n  echo "$HOME"\n', expand: true }])
  })

  it('heredocs: <<- strips leading tabs, a quoted delimiter turns expansion off, several follow each other', () => {
    const { instructions } = parseDockerfile("FROM a\nCOPY <<-one <<'two' /dest/\n\tfirst $X\n\tone\nsecond $X\ntwo\n")
    expect(instructions[1]?.heredocs).toEqual([
      { name: 'one', content: 'first $X\n', expand: true },
      { name: 'two', content: 'second $X\n', expand: false },
    ])
  })

  it('a heredoc without its delimiter line is an error naming the instruction', () => {
    expect(() => parseDockerfile('FROM a\nRUN <<EOF\necho hi')).toThrow('Dockerfile:2: here-document "EOF" is not closed')
  })

  it('<<< and a heredoc-looking word inside exec form are not heredocs', () => {
    const { instructions } = parseDockerfile('FROM a\nRUN cat <<< "x"\nRUN ["sh", "-c", "cat <<EOF"]')
    expect(instructions.map((i) => i.heredocs.length)).toEqual([0, 0, 0])
  })

  it('--mount may be repeated; its values are kept in order', () => {
    const run = parseDockerfile('FROM a\nRUN --mount=type=cache,target=/a --mount=type=secret,id=s make').instructions[1]
    expect(run?.flagValues.mount).toEqual(['type=cache,target=/a', 'type=secret,id=s'])
    expect(run?.args).toBe('make')
  })

  it('rejects a repeated flag', () => {
    expect(() => parseDockerfile('FROM a\nCOPY --chown=1 --chown=2 a /b')).toThrow('Dockerfile:2: flag --chown is given more than once')
  })

  it('returns no instructions for comments only', () => {
    expect(parseDockerfile('# just a comment\n\n').instructions).toEqual([])
  })
})
