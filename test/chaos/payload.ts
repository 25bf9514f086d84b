/**
 * What one chaos run prints remotely: printable multi-byte text of a known content, written in bursts
 * with pauses between them so the stream is still live while faults happen. A burst is either an
 * uploaded file that is `cat`ed or text generated inside the sandbox with busybox tools (`yes | head`,
 * `seq`); the test knows every byte in advance either way.
 *
 * The text stays clear of what the action rightly rewrites in remote output (control characters,
 * `##[`, a leading `::`, the continuation marker) so that the printed text must equal it exactly.
 */
import type { Prng } from './prng.ts'

export interface PayloadFile {
  /** Path relative to the workspace (and to /workspace in the sandbox). */
  name: string
  content: Buffer
}

export interface Payload {
  /** Exactly the bytes the command writes to stdout. */
  text: Buffer
  /** The shell command that writes them. */
  command: string
  /** Files to place in the workspace and upload. */
  files: PayloadFile[]
  /** One line per burst, for the failure report. */
  bursts: string[]
}

/**
 * 1-, 2-, 3- and 4-byte characters; no quote, backslash, `$`, `:`, `#`, `%` or control character,
 * so the text is safe inside single quotes and cannot look like a workflow command.
 */
const ALPHABET = ['a', 'b', 'c', 'x', 'y', 'z', 'K', '0', '7', ' ', '-', '.', ',', 'é', 'ß', 'Ж', 'λ', '漢', '字', '€', '😀', '🧪', '𝄞']
/** First character of a `yes` line: never `-`, which `yes` could read as an option. */
const LEADING = ['a', 'b', 'K', 'é', 'Ж', '漢', '😀']

const SANDBOX_DIR = '/workspace'

function randomLine(rng: Prng, maxChars: number): string {
  // Mostly short lines; some around the action's 4096-byte line cut; a few far longer.
  const kind = rng.next()
  const length = kind < 0.8 ? rng.int(0, 120) : kind < 0.95 ? rng.int(1000, 6000) : rng.int(6000, 40_000)
  const chars: string[] = []
  for (let i = 0; i < Math.min(length, maxChars); i++) chars.push(rng.pick(ALPHABET))
  return chars.join('')
}

/** Lines of random text adding up to about `size` bytes, always ending in a newline. */
function randomText(rng: Prng, size: number): Buffer {
  const parts: string[] = []
  let bytes = 0
  while (bytes < size) {
    // Capping by the remaining size keeps small payloads small; a character is at most 4 bytes.
    const line = randomLine(rng, Math.max(1, Math.ceil((size - bytes) / 2)))
    parts.push(line, '\n')
    bytes += Buffer.byteLength(line) + 1
  }
  return Buffer.from(parts.join(''), 'utf8')
}

interface Burst {
  /** The command that prints `text`. */
  command: string
  text: Buffer
  file?: PayloadFile
  describe: string
}

function fileBurst(rng: Prng, size: number, index: number): Burst {
  const file = { name: `chaos-${index}.txt`, content: randomText(rng, size) }
  return { command: `cat ${SANDBOX_DIR}/${file.name}`, text: file.content, file, describe: `cat of an uploaded file of ${file.content.length} bytes` }
}

function yesBurst(rng: Prng, size: number): Burst {
  const length = rng.int(1, 200)
  const chars = [rng.pick(LEADING)]
  for (let i = 1; i < length; i++) chars.push(rng.pick(ALPHABET))
  const line = `${chars.join('')}\n`
  const count = Math.max(1, Math.round(size / Buffer.byteLength(line)))
  const text = Buffer.from(line.repeat(count), 'utf8')
  // The multi-byte line is part of the command, so it is also inside the spawn event's JSON.
  return { command: `yes '${line.slice(0, -1)}' | head -n ${count}`, text, describe: `yes | head -n ${count}: ${text.length} bytes` }
}

function seqBurst(rng: Prng, size: number): Burst {
  const first = rng.int(1, 1_000_000)
  const lines: string[] = []
  let bytes = 0
  for (let n = first; bytes < size || lines.length === 0; n++) {
    lines.push(String(n))
    bytes += String(n).length + 1
  }
  const text = Buffer.from(`${lines.join('\n')}\n`, 'utf8')
  return { command: `seq ${first} ${first + lines.length - 1}`, text, describe: `seq of ${lines.length} numbers: ${text.length} bytes` }
}

/** Draws a payload of a few bytes to a few MB in one to four bursts. */
export function makePayload(rng: Prng): Payload {
  const total = rng.logUniform(4, 4_000_000)
  const burstCount = Math.min(rng.int(1, 4), Math.max(1, Math.floor(total / 4)))
  const weights = Array.from({ length: burstCount }, () => rng.next() + 0.1)
  const weightSum = weights.reduce((a, b) => a + b, 0)
  const bursts: Burst[] = []
  const commands: string[] = []
  let fileIndex = 0
  for (const weight of weights) {
    const size = Math.max(1, Math.round((total * weight) / weightSum))
    const kind = rng.weighted([
      [5, 'file'],
      [3.5, 'yes'],
      [1.5, 'seq'],
    ] as const)
    const burst = kind === 'file' ? fileBurst(rng, size, fileIndex++) : kind === 'yes' ? yesBurst(rng, size) : seqBurst(rng, size)
    if (bursts.length > 0) {
      const pause = (rng.int(5, 40) / 100).toFixed(2)
      commands.push(`sleep ${pause}`)
      burst.describe += ` (after ${pause} s)`
    }
    bursts.push(burst)
    commands.push(burst.command)
  }
  return {
    text: Buffer.concat(bursts.map((burst) => burst.text)),
    command: commands.join('; '),
    files: bursts.flatMap((burst) => (burst.file ? [burst.file] : [])),
    bursts: bursts.map((burst) => burst.describe),
  }
}
