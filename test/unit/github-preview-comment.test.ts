// The preview comment's markdown, checked as source and as GFM renders it (micromark with the GFM
// extensions, raw HTML passed through as GitHub does before sanitising, so any leak would show).
import { micromark } from 'micromark'
import { gfm, gfmHtml } from 'micromark-extension-gfm'
import { describe, expect, it } from 'vitest'
import { codeBlock, codeCell, commentText } from '../../src/github/comment-markdown.ts'
import {
  renderPreviewComment,
  renderRemovedPreviewComment,
  type PreviewCommentInput,
} from '../../src/github/preview-comment.ts'

const SHA = '0123456789abcdef0123456789abcdef01234567'
const AT = new Date(Date.UTC(2026, 10, 22, 12, 0, 0))

function render(markdown: string): string {
  return micromark(markdown, { extensions: [gfm()], htmlExtensions: [gfmHtml()], allowDangerousHtml: true })
}

function decode(html: string): string {
  return html
    .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec: string) => String.fromCodePoint(Number(dec)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
}

/** Visible text outside code and links, where GitHub looks for @mentions and #references. */
function proseText(html: string): string {
  return decode(html.replace(/<code>[\s\S]*?<\/code>/g, ' ').replace(/<a [^>]*>[\s\S]*?<\/a>/g, ' ').replace(/<[^>]+>/g, ' '))
}

function cellsPerRow(html: string): number[] {
  return [...html.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => (m[1]?.match(/<t[dh][ >]/g) ?? []).length)
}

function hrefs(html: string): string[] {
  return [...html.matchAll(/<a href="([^"]*)"/g)].map((m) => decode(m[1] ?? ''))
}

function codes(html: string): string[] {
  return [...html.matchAll(/<code(?: class="[^"]*")?>([\s\S]*?)<\/code>/g)].map((m) => decode(m[1] ?? ''))
}

function cellOf(html: string, label: string): string {
  const match = new RegExp(`<td>${label}</td>\\s*<td>([\\s\\S]*?)</td>`).exec(html)
  if (match === null) throw new Error(`no row ${label}`)
  return match[1] ?? ''
}

function input(overrides: Partial<PreviewCommentInput> = {}): PreviewCommentInput {
  return {
    name: 'web',
    serverUrl: 'https://github.com',
    repository: { owner: 'acme', repo: 'shop' },
    run: { id: 4242, attempt: 2 },
    at: AT,
    status: 'ready',
    commitSha: SHA,
    branch: 'feature/login',
    service: 'Together Sandbox',
    imageId: 'img-7f3a',
    snapshotId: 'snap-91',
    sandboxId: 'sbx-5c2e',
    expiresAt: new Date(AT.getTime() + 2.5 * 3600_000),
    ports: [{ port: 8080, url: 'https://8080-sbx-5c2e.preview.example/' }, { port: 5432 }],
    reach: 'together-sandbox exec sbx-5c2e -- sh',
    ...overrides,
  }
}

describe('preview comment: rendering', () => {
  it('writes the marker, a heading with the status, the table and the command', () => {
    expect(renderPreviewComment(input())).toBe(
      '<!-- sandbox-preview:web -->\n' +
        '### ✅ Preview `web`: ready\n\n' +
        '| | |\n|---|---|\n' +
        '| Status | ✅ ready |\n' +
        `| Commit | [\`0123456\`](https://github.com/acme/shop/commit/${SHA}) |\n` +
        '| Branch | `feature/login` |\n' +
        '| Service | Together Sandbox |\n' +
        '| Image | `img-7f3a` |\n' +
        '| Snapshot | `snap-91` |\n' +
        '| Sandbox | `sbx-5c2e` |\n' +
        '| Expires | 2026-11-22T14:30:00Z (in 2 h 30 m) |\n' +
        '| Open ports | `8080` → <https://8080-sbx-5c2e.preview.example/>, `5432` |\n' +
        '| Run | [run 4242, attempt 2](https://github.com/acme/shop/actions/runs/4242/attempts/2) |\n' +
        '| Updated | 2026-11-22T12:00:00Z |\n' +
        '\n**How to reach it**\n\n```sh\ntogether-sandbox exec sbx-5c2e -- sh\n```\n',
    )
  })

  it('renders links and ids plainly: valid hrefs, literal code, no entity soup', () => {
    const html = render(renderPreviewComment(input()))
    expect(hrefs(html)).toEqual([
      `https://github.com/acme/shop/commit/${SHA}`,
      'https://8080-sbx-5c2e.preview.example/',
      'https://github.com/acme/shop/actions/runs/4242/attempts/2',
    ])
    expect(codes(html)).toEqual(['web', '0123456', 'feature/login', 'img-7f3a', 'snap-91', 'sbx-5c2e', '8080', '5432', 'together-sandbox exec sbx-5c2e -- sh\n'])
    // Code and links carry the characters themselves, never visible entities.
    expect(html).not.toMatch(/&amp;#\d+;/)
    expect(cellsPerRow(html).every((n) => n === 2)).toBe(true)
  })

  it('links the run page for a first attempt and leaves out what it does not know', () => {
    const markdown = renderPreviewComment({
      name: 'api', serverUrl: 'https://ghe.example.com/', repository: { owner: 'acme', repo: 'shop' },
      run: { id: 7 }, at: AT, status: 'deploying', commitSha: SHA,
    })
    expect(markdown).toContain('| Run | [run 7](https://ghe.example.com/acme/shop/actions/runs/7) |')
    expect(markdown).toContain('### ⏳ Preview `api`: deploying')
    expect(markdown).not.toMatch(/Branch|Image|Sandbox|Expires|Open ports|How to reach/)
  })

  it('says when an expiry has passed', () => {
    const markdown = renderPreviewComment(input({ expiresAt: new Date(AT.getTime() - 5 * 60_000) }))
    expect(markdown).toContain('| Expires | 2026-11-22T11:55:00Z (expired 5 m 00 s ago) |')
  })

  it('rewrites the comment as removed: what, when, by which run', () => {
    const markdown = renderRemovedPreviewComment({
      name: 'web', serverUrl: 'https://github.com', repository: { owner: 'acme', repo: 'shop' },
      run: { id: 4300 }, at: AT, commitSha: SHA, reason: 'pull request closed',
      removed: [{ what: 'sandbox', id: 'sbx-5c2e' }, { what: 'snapshot', id: 'snap-91' }],
    })
    expect(markdown).toBe(
      '<!-- sandbox-preview:web -->\n### 🗑️ Preview `web`: removed\n\n| | |\n|---|---|\n' +
        '| Status | 🗑️ removed |\n' +
        '| Removed | sandbox `sbx-5c2e`, snapshot `snap-91` |\n' +
        '| Reason | pull request closed |\n' +
        `| Last commit | [\`0123456\`](https://github.com/acme/shop/commit/${SHA}) |\n` +
        '| When | 2026-11-22T12:00:00Z |\n' +
        '| By | [run 4300](https://github.com/acme/shop/actions/runs/4300) |\n' +
        '\nThis preview no longer exists; the ids above are kept for reference.\n',
    )
    const nothing = renderRemovedPreviewComment({
      name: 'web', serverUrl: 'https://github.com', repository: { owner: 'acme', repo: 'shop' }, run: { id: 1 }, at: AT, removed: [],
    })
    expect(nothing).toContain('| Removed | nothing was left to remove |')
  })
})

describe('preview comment: hostile values stay text', () => {
  // Legal git branch name: no space, ~ ^ : ? * [ \ or "..", but <, >, |, `, $, @, # are allowed.
  const BRANCH = 'x|y<script>alert(1)</script>`$(id)`@admin#12'
  const TITLE = 'Fix [click](https://evil.example) <img src=x onerror=alert(1)> | --- | @acme/team #12 GH-3 www.evil.example **b**'
  const ERROR = 'boom\n</td></tr></table><details open>\n| a | b |\n[x](javascript:alert(1)) @someone #99\n\x1b[31mred\x1b[0m'

  const hostile = (): PreviewCommentInput =>
    input({
      status: 'failed',
      branch: BRANCH,
      title: TITLE,
      error: ERROR,
      imageId: 'img`1``2|3\\|4',
      sandboxId: '`leading',
      ports: [{ port: 80, url: 'javascript:alert(1)' }, { port: 81, url: 'https://p.example/a|b(c)<d>' }],
      reach: 'sh -c "echo ```\n|done|"',
    })

  it('keeps the table whole (each value entire in its own cell) and lets no HTML through', () => {
    const html = render(renderPreviewComment(hostile()))
    // GFM drops cells beyond the header's count, so a split shows as a value cut short.
    expect(cellsPerRow(html).every((n) => n === 2)).toBe(true)
    expect(codes(cellOf(html, 'Branch'))).toEqual([BRANCH])
    expect(codes(cellOf(html, 'Image'))).toEqual(['img`1``2|3\\\\|4'])
    expect(decode(cellOf(html, 'Error'))).toContain('[x](javascript:alert(1))')
    expect(html.match(/<table>/g)).toHaveLength(1)
    expect(html).not.toMatch(/<script|<img|<details/i)
  })

  it('links only what the action built or validated', () => {
    const html = render(renderPreviewComment(hostile()))
    expect(hrefs(html)).toEqual([
      `https://github.com/acme/shop/commit/${SHA}`,
      'https://p.example/a%7Cb%28c%29%3Cd%3E',
      'https://github.com/acme/shop/actions/runs/4242/attempts/2',
    ])
    expect(decode(cellOf(html, 'Open ports'))).toContain('javascript:alert(1)')
  })

  it('shows every value as written, without pinging or cross-referencing anyone', () => {
    const html = render(renderPreviewComment(hostile()))
    const prose = proseText(html)
    expect(prose.replace(/\u2060/g, '')).toContain(TITLE)
    expect(prose).not.toMatch(/@[A-Za-z0-9]|#\d|GH-\d/)
    expect(html).not.toMatch(/<a href="[^"]*www\.evil/)
    const code = codes(html)
    expect(code).toContain(BRANCH)
    expect(code).toContain('`leading')
    // A pipe after a backslash cannot be shown exactly in a table's code span; it stays in its cell.
    expect(code).toContain('img`1``2|3\\\\|4')
    expect(code).toContain('sh -c "echo ```\n|done|"\n')
    const error = decode(cellOf(html, 'Error')).replace(/<br \/>|<br>/g, '\n')
    expect(error).toBe('boom\n</td></tr></table><details open>\n| a | b |\n[x](javascript:alert(1)) @\u2060someone #\u206099\nred')
  })

  it('refuses a server URL that is not http(s) and a run id that is not a number', () => {
    expect(() => renderPreviewComment(input({ serverUrl: 'javascript:alert(1)' }))).toThrow(/not an http\(s\) URL/)
    expect(() => renderPreviewComment(input({ run: { id: Number.NaN } }))).toThrow(/positive integers/)
  })

  it('shows a commit that is not a SHA without linking it', () => {
    const html = render(renderPreviewComment(input({ commitSha: 'main](https://evil.example)' })))
    expect(hrefs(html).some((h) => h.includes('evil'))).toBe(false)
    expect(codes(html)).toContain('main](https://evil.example)')
  })
})

describe('comment markdown pieces', () => {
  it('code cells pick a fence longer than any backtick run and pad edge backticks', () => {
    expect(codeCell('a`b')).toBe('``a`b``')
    expect(codeCell('`x`')).toBe('`` `x` ``')
    expect(codeCell('  \n ')).toBe('–')
    expect(codeCell('a|b')).toBe('`a\\|b`')
  })

  it('code blocks use a fence longer than any inside', () => {
    expect(codeBlock('a ```` b')).toBe('`````\na ```` b\n`````')
  })

  it('free text entity-escapes markup and breaks mentions, references and www links', () => {
    expect(commentText('@a #1 GH-2 www.x *y*')).toBe('&#64;\u2060a &#35;\u20601 GH&#45;\u20602 www&#46;x &#42;y&#42;')
  })
})
