import { describe, expect, it } from 'vitest'
import { CONTINUATION_MARKER } from '../../src/output/remote-log.ts'
import { PrintedWindowCheck, type PrintedCheck } from '../bench/printed-check.ts'

const CLOSE = Buffer.from('::tok3n::\n')
const expected = Buffer.from('first line\n##[x] and ##[warning]\n::notice:: here\nsecond, much longer line\n┃ ünïcødé\n')
// What the action prints for it: a cut line (continuation marker), and the zero-width guards.
const printed = Buffer.from('first line\n#\u200B#[x] and #\u200B#[warning]\n:\u200B:notice:: here\nsecond, much  ↩\nlonger line\n┃ ünïcødé\n')
const after = Buffer.from('::endgroup::\n')
const output = Buffer.concat([printed, CLOSE, after])

/** A whole window at once, delimited by the caller (no closing marker to look for). */
function checkWindow(window: Buffer): PrintedCheck {
  const check = new PrintedWindowCheck(expected)
  check.push(window)
  return check.finish()
}

/** Feeds `bytes` in pieces cut at `cuts`; returns the check and what the chunks said of the window's end. */
function feed(bytes: Buffer, cuts: number[]): { check: PrintedWindowCheck; rest: number[] } {
  const check = new PrintedWindowCheck(expected, CLOSE)
  const rest: number[] = []
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    rest.push(check.push(bytes.subarray(from, cut)))
    from = cut
  }
  return { check, rest }
}

describe('PrintedWindowCheck (the stream bench checks the printed output as it comes)', () => {
  it('accepts the printed window however the output is cut into chunks, and finds where the window ends', () => {
    for (let a = 0; a <= output.length; a++) {
      for (let b = a; b <= output.length; b += 7) {
        const { check, rest } = feed(output, [a, b])
        const result = check.finish()
        expect(result, `cuts at ${a} and ${b}`).toMatchObject({ ok: true, printedLines: 6 })
        expect(check.closedAt).toBe(printed.length)
        // The chunk that completes the closing marker says how many of its bytes follow it.
        const completing = rest.findIndex((value) => value !== -1)
        const end = [a, b, output.length][completing] as number
        expect(rest[completing]).toBe(end - (printed.length + CLOSE.length))
      }
    }
  })

  it('takes out a continuation marker whose first byte is what was expected there', () => {
    // The line `ab  cd` cut after `ab `: the marker's space stands where the line's second space
    // was expected, so the bytes differ only from the marker's second byte on.
    const line = Buffer.from('ab  cd\n')
    const cut = Buffer.concat([Buffer.from(`ab ${CONTINUATION_MARKER}\n cd\n`), CLOSE])
    for (let a = 0; a <= cut.length; a++) {
      const check = new PrintedWindowCheck(line, CLOSE)
      check.push(cut.subarray(0, a))
      check.push(cut.subarray(a))
      expect(check.finish(), `cut at ${a}`).toMatchObject({ ok: true, printedLines: 2 })
    }
  })

  it('counts characters and lines of what matched', () => {
    const result = checkWindow(printed)
    expect(result).toEqual({ ok: true, printedChars: [...expected.toString('utf8')].length, expectedChars: [...expected.toString('utf8')].length, printedLines: 6 })
  })

  it('reports a changed, a missing and an extra byte, wherever the chunks are cut', () => {
    const changed = Buffer.from(printed)
    changed[3] = 0x58
    const missing = Buffer.concat([printed.subarray(0, 30), printed.subarray(31)])
    const extra = Buffer.concat([printed, Buffer.from('x\n')])
    for (const [name, window] of [
      ['changed', changed],
      ['missing', missing],
      ['extra', extra],
    ] as const) {
      for (let cut = 0; cut <= window.length; cut++) {
        const { check } = feed(Buffer.concat([window, CLOSE]), [cut])
        const result = check.finish()
        expect(result.ok, `${name}, cut at ${cut}`).toBe(false)
        expect(result.difference).toMatch(/difference at byte|ends at byte/)
      }
    }
  })

  it('reports output that stops before all of it was printed, or without its closing marker', () => {
    expect(checkWindow(printed.subarray(0, 20)).difference).toMatch(/ends at byte 17 of/)
    const { check } = feed(printed, [10])
    expect(check.finish().difference).toMatch(/closing marker was never printed/)
  })

  it('does not count a continuation marker as the line break it stands before', () => {
    // A continuation marker the payload itself never had must not make up for a missing line break.
    const { check } = feed(Buffer.concat([Buffer.from('first line ↩\n'), CLOSE]), [])
    expect(check.finish().ok).toBe(false)
  })
})
