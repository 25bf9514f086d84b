/**
 * The remote stdout the streaming figures send, generated deterministically so that the replay
 * server (its own process) and the bench (which checks what the action printed) make the same bytes
 * from a name and a size without passing 100 MB between them.
 *
 * - `ascii-short`: 80-byte lines of random printable ASCII (quotes, backslashes, `#`, `:` included,
 *   so JSON escaping and the sanitiser's special characters occur as they would in real logs).
 * - `ascii-long`: 4 KiB lines of the same, longer than a printed line may be (the action cuts them).
 * - `binary`: random bytes, so every event is base64 and the printed text is full of U+FFFD,
 *   control pictures and lone `\r` line ends.
 * - `utf8`: lines of 1- to 4-byte characters (Latin, Cyrillic, CJK, emoji); every event is base64
 *   (not printable ASCII) and event boundaries fall inside characters.
 *
 * No payload contains U+200B or `↩` (U+21A9): those are what the action inserts (zero-width guards,
 * continuation markers), and the check removes them from what it reads. In `binary` that means no
 * byte 0xE2 (the lead byte of both), which is replaced by 0xE3.
 */
import { createCipheriv } from 'node:crypto'

export const PAYLOADS = ['ascii-short', 'ascii-long', 'binary', 'utf8'] as const
export type PayloadKind = (typeof PAYLOADS)[number]

/** Deterministic random bytes: AES-128-CTR over zeros runs at GB/s, far from any bottleneck. */
export function randomBytes(length: number, seed: string): Buffer {
  const key = Buffer.alloc(16)
  key.write(seed.slice(0, 16))
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()])
}

function printableLines(total: number, lineBytes: number, seed: string): Buffer {
  const out = randomBytes(total, seed)
  for (let i = 0; i < total; i++) {
    // 95 printable characters (32..126); the last byte of every line is its newline.
    out[i] = (i + 1) % lineBytes === 0 ? 0x0a : 32 + ((out[i] as number) % 95)
  }
  if (total > 0) out[total - 1] = 0x0a
  return out
}

function binary(total: number, seed: string): Buffer {
  const out = randomBytes(total, seed)
  for (let i = 0; i < total; i++) if (out[i] === 0xe2) out[i] = 0xe3
  // A final newline, so the last line is complete and printed like the others.
  if (total > 0) out[total - 1] = 0x0a
  return out
}

/** Code point ranges of the utf8 payload, by encoded length: a mix like real multilingual logs. */
const UTF8_RANGES: readonly [number, number][] = [
  [0x61, 0x7a], // a-z
  [0x20, 0x20], // space
  [0xe0, 0xff], // Latin-1 letters (2 bytes)
  [0x430, 0x44f], // Cyrillic (2 bytes)
  [0x4e00, 0x4fff], // CJK (3 bytes)
  [0x1f600, 0x1f64f], // emoji (4 bytes)
]

function utf8Lines(total: number, seed: string): Buffer {
  const random = randomBytes(Math.ceil(total / 2) + 64, seed)
  const out = Buffer.alloc(total)
  let written = 0
  let r = 0
  let lineChars = 0
  const byte = (): number => random[r++ % random.length] as number
  while (written < total) {
    const left = total - written
    if (left === 1 || lineChars >= 100) {
      out[written++] = 0x0a
      lineChars = 0
      continue
    }
    const [from, to] = UTF8_RANGES[byte() % UTF8_RANGES.length] as [number, number]
    const codePoint = from + ((byte() << 8) | byte()) % (to - from + 1)
    const char = String.fromCodePoint(codePoint)
    // Leave room for the final newline; a character that does not fit becomes plain ASCII.
    const size = Buffer.byteLength(char)
    if (size >= left) out[written++] = 0x78
    else written += out.write(char, written)
    lineChars++
  }
  return out
}

export function generatePayload(kind: PayloadKind, total: number, seed = kind): Buffer {
  switch (kind) {
    case 'ascii-short':
      return printableLines(total, 80, seed)
    case 'ascii-long':
      return printableLines(total, 4096, seed)
    case 'binary':
      return binary(total, seed)
    case 'utf8':
      return utf8Lines(total, seed)
  }
}

/**
 * What a runner log reader must see inside the action's stop-commands window for `payload`, once
 * the action's own insertions (continuation markers, zero-width guards) are taken out again:
 * - lines end at `\r\n`, `\r` or `\n` and are printed with `\n` (the runner splits on all three);
 * - bytes that are not UTF-8 become U+FFFD (WHATWG decoding with replacement);
 * - C0 controls other than TAB and ESC, and DEL, become their Unicode control pictures.
 * This is the documented behaviour of the log writer (src/output/remote-log.ts, line-sanitizer.ts)
 * restated independently, so a fast path that changes what is printed fails the bench's check.
 */
export function expectedPrinted(payload: Buffer): Buffer {
  // Like the action's decoder: a byte order mark at the very start of the stream is dropped.
  const text = new TextDecoder('utf-8', { fatal: false }).decode(payload)
  const printed = text
    .replace(/\r\n|\r/g, '\n')
    // eslint-disable-next-line no-control-regex
    .replace(/[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g, (c) => (c === '\x7f' ? '\u2421' : String.fromCharCode(0x2400 + c.charCodeAt(0))))
  return Buffer.from(printed.endsWith('\n') || printed === '' ? printed : `${printed}\n`, 'utf8')
}
