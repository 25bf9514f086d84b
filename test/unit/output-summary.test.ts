import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  fitSummary,
  renderBuildSummary,
  renderRunSummary,
  STEP_SUMMARY_LIMIT_BYTES,
  writeSummary,
  type RunSummaryOperation,
} from '../../src/output/summary.ts'
import { codeSpan, escapeHtml, escapeMarkdownInline } from '../../src/output/markdown-escape.ts'

// core.summary remembers the file path on first use, so this file uses one summary file throughout.
const summaryFile = join(mkdtempSync(join(tmpdir(), 'summary-')), 'step-summary.md')

const HOSTILE = 'x <script>alert(1)</script> | `code` *b* _i_ [l](http://e) ![i](http://e/i.png) $x$ ~~s~~ \\ &amp; @user\nsecond line'

function op(overrides: Partial<RunSummaryOperation> = {}): RunSummaryOperation {
  return {
    label: 'run',
    operationId: 'op-1',
    status: 'SUCCESS',
    exitCode: 0,
    durationMs: 3200,
    resultImage: null,
    timedOut: false,
    ...overrides,
  }
}

/** Cells of a markdown table row, split on unescaped pipes exactly as GFM does. */
function cells(row: string): string[] {
  return row.split(/(?<!\\)\|/).slice(1, -1)
}

function tableRows(markdown: string): string[] {
  return markdown.split('\n').filter((l) => l.startsWith('|'))
}

describe('markdown escaping', () => {
  it('leaves no markup characters from remote text', () => {
    const escaped = escapeMarkdownInline(HOSTILE)
    expect(escaped.replaceAll('<br>', '')).not.toMatch(/[<>|`*_[\]$~\\@]/)
    expect(escaped).not.toContain('<script')
    expect(escaped).not.toContain('\n')
    expect(escaped).toContain('<br>')
    expect(escaped).toContain('&#124;')
    // "&amp;" in the input is text, so its "&" is escaped too.
    expect(escaped).toContain('&#38;amp;')
  })

  it('keeps ordinary punctuation readable, and URLs readable but not links', () => {
    expect(escapeMarkdownInline('retry: 3 (of 5) - see a.b/c?x=1')).toBe('retry: 3 (of 5) - see a.b/c?x=1')
    expect(escapeMarkdownInline('see https://api.example.com:8443/v1 or www.example.com')).toBe('see https&#58;//api.example.com:8443/v1 or www&#46;example.com')
  })

  it('shows identifiers and URLs verbatim in code spans, escaping only what a code span cannot hold', () => {
    expect(codeSpan('https://api.example.com/sandboxes')).toBe('`https://api.example.com/sandboxes`')
    expect(codeSpan('sha256:abc')).toBe('`sha256:abc`')
    expect(codeSpan('a|b')).toBe('<code>a&#124;b</code>')
    expect(codeSpan('x`y')).toBe('<code>x&#96;y</code>')
  })

  it('escapes HTML for <pre> blocks, including a closing </pre>, and strips ANSI codes', () => {
    expect(escapeHtml('</pre><img src=x onerror=alert(1)> "\x1b[31mred\x1b[0m"')).toBe(
      '&#60;/pre&#62;&#60;img src=x onerror=alert(1)&#62; &#34;red&#34;',
    )
  })
})

describe('renderRunSummary', () => {
  it('renders one table row per operation; remote text cannot break the table or inject markup', () => {
    const md = renderRunSummary({
      title: 'Remote | run',
      provider: 'contree (https://api.example)',
      operations: [
        op(),
        op({ label: HOSTILE, status: 'FAILED', exitCode: 2, error: HOSTILE, resultImage: 'img-`1`' }),
        op({ label: 'slow', status: 'FAILED', exitCode: null, timedOut: true, durationMs: 125_000 }),
      ],
      outputsTail: ['ok', '</pre><script>x</script>', '\x1b[32mgreen\x1b[0m'],
    })
    const rows = tableRows(md)
    expect(rows).toHaveLength(5) // header, separator, 3 operations
    for (const row of rows) expect(cells(row)).toHaveLength(8)
    expect(md).not.toContain('<script')
    // No code span, link or image can form from remote text; our own code spans hold only plain ids.
    expect(md).not.toContain('`code`')
    expect(md).not.toContain('`1`')
    expect(md).not.toContain('](')
    expect(md).toContain('| timed out |')
    expect(md).toContain('| failed on the service: x &#60;script&#62;')
    expect(md).toContain('2 m 05 s')
    expect(md).toContain('## ✗ ')
    expect(md).toContain('<pre>\nok\n&#60;/pre&#62;&#60;script&#62;x&#60;/script&#62;\ngreen\n</pre>')
    expect(md.match(/<pre>/g)).toHaveLength(1)
    expect(md.match(/<\/pre>/g)).toHaveLength(1)
  })

  it('marks an all-successful run with ✓', () => {
    expect(renderRunSummary({ title: 'r', provider: 'p', operations: [op()] })).toMatch(/^## ✓ r/)
  })

  it('reads plainly: the endpoint verbatim, a failed command as failed, never as SUCCESS', () => {
    const md = renderRunSummary({
      title: 'Remote sandbox operations',
      provider: 'contree',
      endpoint: 'https://api.tokenfactory.nebius.com/sandboxes',
      operations: [op({ exitCode: 3 }), op({ label: 'import python', exitCode: null, expectsExitCode: false }), op({ label: 'killed', exitCode: null, expectsExitCode: true })],
    })
    expect(md).toContain('Provider: contree at `https://api.tokenfactory.nebius.com/sandboxes`')
    expect(md).toContain('| ✗ | run | failed with exit code 3 | 3 |')
    expect(md).toContain('| ✓ | import python | done | – |')
    expect(md).toContain('| ✗ | killed | killed by a signal | – |')
    expect(md).not.toMatch(/&#\d+;/)
    expect(md).not.toContain('SUCCESS')
  })

  it('keeps a 5 MB tail under the size budget, newest lines first, with a visible note', () => {
    const tail = Array.from({ length: 50_000 }, (_, i) => `line ${i} ${'y'.repeat(90)}`)
    const md = renderRunSummary({ title: 't', provider: 'p', operations: [op({ status: 'FAILED', exitCode: 1 })], outputsTail: tail })
    expect(Buffer.byteLength(md)).toBeLessThan(STEP_SUMMARY_LIMIT_BYTES)
    expect(md).toMatch(/\d+ earlier output lines were omitted/)
    expect(md).toContain(`line 49999 `)
    expect(md).not.toContain('line 0 ')
    expect(md.match(/<\/pre>/g)).toHaveLength(1)
  })

  it('caps a huge operations table with a note', () => {
    const operations = Array.from({ length: 20_000 }, (_, i) => op({ label: `op ${i}`, operationId: `id-${i}` }))
    const md = renderRunSummary({ title: 't', provider: 'p', operations }, { maxBytes: 64 * 1024 })
    expect(Buffer.byteLength(md)).toBeLessThanOrEqual(64 * 1024)
    expect(md).toMatch(/\d+ more operations were omitted/)
  })
})

describe('renderBuildSummary', () => {
  it('renders image facts and a step table with escaped instructions', () => {
    const md = renderBuildSummary({
      imageUuid: 'uuid-1',
      digest: 'sha256:abc',
      tag: 'app:latest',
      cacheHit: false,
      steps: [
        { index: 1, instruction: 'FROM ubuntu', outcome: 'cached', resultImage: 'img-1' },
        { index: 2, instruction: `RUN echo "${HOSTILE}"`, outcome: 'built', durationMs: 850 },
        { index: 3, instruction: 'RUN make | tee log', outcome: 'failed', durationMs: 3200 },
        { index: 4, instruction: 'COPY . .', outcome: 'skipped' },
      ],
    })
    const steps = tableRows(md.slice(md.indexOf('| # |')))
    expect(steps).toHaveLength(6)
    for (const row of steps) expect(cells(row)).toHaveLength(5)
    expect(md).not.toContain('<script')
    expect(md).toContain('✗ failed')
    expect(md).toContain('♻ cached')
    expect(md).toContain('850 ms')
    expect(md).toContain('`sha256:abc`')
  })

  it('says when the whole build was a cache hit', () => {
    const md = renderBuildSummary({ imageUuid: 'u', digest: 'd', cacheHit: true, steps: [] })
    expect(md).toContain('hit: the build was skipped')
  })

  it('caps a huge step table with a note', () => {
    const steps = Array.from({ length: 50_000 }, (_, i) => ({ index: i, instruction: `RUN step ${i}`, outcome: 'built' as const }))
    const md = renderBuildSummary({ imageUuid: 'u', digest: 'd', cacheHit: false, steps })
    expect(Buffer.byteLength(md)).toBeLessThan(300 * 1024)
    expect(md).toMatch(/\d+ more build steps were omitted/)
  })
})

describe('fitSummary', () => {
  it('cuts at a line boundary, closes an open <pre>/<details> and adds a note', () => {
    const md = `intro\n<details open><summary>s</summary>\n\n<pre>\n${'line\n'.repeat(10_000)}</pre>\n\n</details>\n`
    const fitted = fitSummary(md, 10_000) as string
    expect(Buffer.byteLength(fitted)).toBeLessThanOrEqual(10_000)
    expect(fitted).toMatch(/line\n<\/pre>\n\n<\/details>\n/)
    expect(fitted).toContain('The rest of this summary was omitted')
    expect(fitSummary(md, 50)).toBeNull()
    expect(fitSummary('small\n', 100)).toBe('small\n')
  })
})

describe('writeSummary', () => {
  beforeAll(() => {
    process.env['GITHUB_STEP_SUMMARY'] = summaryFile
  })
  beforeEach(() => {
    writeFileSync(summaryFile, '')
  })

  it('does nothing (and does not throw) without GITHUB_STEP_SUMMARY', async () => {
    const saved = process.env['GITHUB_STEP_SUMMARY']
    delete process.env['GITHUB_STEP_SUMMARY']
    try {
      await expect(writeSummary('# hi')).resolves.toBe(false)
    } finally {
      process.env['GITHUB_STEP_SUMMARY'] = saved
    }
  })

  it('appends markdown to the summary file', async () => {
    await expect(writeSummary('# one')).resolves.toBe(true)
    await expect(writeSummary('# two\n')).resolves.toBe(true)
    expect(readFileSync(summaryFile, 'utf8')).toBe('# one\n# two\n')
  })

  it('keeps the whole file under 1 MiB, counting what the step already wrote', async () => {
    writeFileSync(summaryFile, 'z'.repeat(900 * 1024) + '\n')
    const tail = Array.from({ length: 50_000 }, (_, i) => `line ${i} ${'y'.repeat(90)}`) // ~5 MB
    await expect(writeSummary(tail.join('\n'))).resolves.toBe(true)
    expect(statSync(summaryFile).size).toBeLessThan(STEP_SUMMARY_LIMIT_BYTES)
    expect(readFileSync(summaryFile, 'utf8')).toContain('The rest of this summary was omitted')
  })

  it('writes a 5 MB-tail run summary under 1 MiB with its truncation note', async () => {
    const tail = Array.from({ length: 50_000 }, (_, i) => `line ${i} ${'y'.repeat(90)}`)
    const md = renderRunSummary({ title: 't', provider: 'p', operations: [op()], outputsTail: tail }, { maxBytes: 4 * 1024 * 1024 })
    await writeSummary(md)
    const size = statSync(summaryFile).size
    expect(size).toBeLessThan(STEP_SUMMARY_LIMIT_BYTES)
    expect(size).toBeGreaterThan(STEP_SUMMARY_LIMIT_BYTES / 2)
    const written = readFileSync(summaryFile, 'utf8')
    expect(written).toContain('omitted')
    expect(written.match(/<pre>/g)?.length).toBe(written.match(/<\/pre>/g)?.length)
  })

  it('writes nothing when the file is already full', async () => {
    writeFileSync(summaryFile, 'z'.repeat(STEP_SUMMARY_LIMIT_BYTES - 100))
    await expect(writeSummary('# more')).resolves.toBe(false)
    expect(statSync(summaryFile).size).toBe(STEP_SUMMARY_LIMIT_BYTES - 100)
  })
})
