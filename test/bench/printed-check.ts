/**
 * Checks what the action printed for a payload, byte for byte: the remote output inside its
 * stop-commands window, with the action's own insertions taken out again (the ` ↩` continuation
 * marker that ends every piece of a cut line but the last, with its line break, and the zero-width
 * spaces of the `#\u200B#[` and leading `:\u200B:` guards), must equal `expectedPrinted(payload)`:
 * every line once, in order, nothing added. The payloads never contain either insertion.
 */
import { CONTINUATION_MARKER } from '../../src/output/remote-log.ts'

const CONTINUATION = Buffer.from(`${CONTINUATION_MARKER}\n`)
const ZERO_WIDTH_SPACE = Buffer.from('\u200B')

export interface PrintedCheck {
  ok: boolean
  /** Characters the action printed for the payload (insertions removed). */
  printedChars: number
  expectedChars: number
  /** Lines the action printed inside the window, cut pieces counted one by one. */
  printedLines: number
  /** Where the first difference is, with a little context on both sides (JSON-quoted). */
  difference?: string
}

function removeAll(bytes: Buffer, pattern: Buffer): Buffer {
  const pieces: Buffer[] = []
  let start = 0
  for (let at = bytes.indexOf(pattern); at !== -1; at = bytes.indexOf(pattern, start)) {
    pieces.push(bytes.subarray(start, at))
    start = at + pattern.length
  }
  if (start === 0) return bytes
  pieces.push(bytes.subarray(start))
  return Buffer.concat(pieces)
}

function countChars(bytes: Buffer): number {
  let chars = 0
  // Every UTF-8 byte that is not a continuation byte (10xxxxxx) starts a character.
  for (let i = 0; i < bytes.length; i++) if (((bytes[i] as number) & 0xc0) !== 0x80) chars++
  return chars
}

function countLines(bytes: Buffer): number {
  let lines = 0
  for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) lines++
  return lines
}

export function checkPrinted(window: Buffer, expected: Buffer): PrintedCheck {
  const printed = removeAll(removeAll(window, CONTINUATION), ZERO_WIDTH_SPACE)
  const result: PrintedCheck = {
    ok: printed.equals(expected),
    printedChars: countChars(printed),
    expectedChars: countChars(expected),
    printedLines: countLines(window),
  }
  if (!result.ok) {
    let at = 0
    const common = Math.min(printed.length, expected.length)
    while (at < common && printed[at] === expected[at]) at++
    const around = (bytes: Buffer): string => JSON.stringify(bytes.subarray(Math.max(0, at - 40), at + 40).toString('utf8'))
    result.difference = `first difference at byte ${at} of ${expected.length} expected (${printed.length} printed): printed ${around(printed)}, expected ${around(expected)}`
  }
  return result
}
