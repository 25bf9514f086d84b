/**
 * Splits the service's SSE text into frames and tells what each one carries, so the chaos proxy can
 * place a fault at a frame boundary, at a given byte of the remote output, or inside a character.
 */

export interface SseFrame {
  /** The frame's text including its closing blank line. */
  text: Buffer
  id?: number
  event?: string
  /** Bytes of the main process's stdout this frame carries (empty for other frames). */
  stdout: Buffer
}

const FRAME_END = Buffer.from('\n\n')
const MAIN_SPID = 1

/** Collects SSE text and hands out complete frames (the service ends lines with \n only). */
export class FrameSplitter {
  #pending: Buffer[] = []
  #pendingLength = 0

  /** Adds text; returns the frames it completed. */
  push(text: Buffer): SseFrame[] {
    this.#pending.push(text)
    this.#pendingLength += text.length
    // Cheap check first: most pieces end on a frame boundary, big frames arrive in many pieces.
    if (text.indexOf(FRAME_END) === -1 && !(text[0] === 0x0a && this.#pendingLength > text.length)) return []
    const all = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending)
    const frames: SseFrame[] = []
    let start = 0
    for (let end = all.indexOf(FRAME_END, start); end !== -1; end = all.indexOf(FRAME_END, start)) {
      frames.push(describeFrame(all.subarray(start, end + FRAME_END.length)))
      start = end + FRAME_END.length
    }
    const rest = all.subarray(start)
    this.#pending = rest.length > 0 ? [rest] : []
    this.#pendingLength = rest.length
    return frames
  }

  /** Text of a frame that has not been completed yet. */
  get remainder(): Buffer {
    return Buffer.concat(this.#pending)
  }
}

function describeFrame(text: Buffer): SseFrame {
  const frame: SseFrame = { text, stdout: Buffer.alloc(0) }
  let data: string | undefined
  for (const line of text.toString('utf8').split('\n')) {
    if (line.startsWith('id:')) frame.id = Number(line.slice(3).trim())
    else if (line.startsWith('event:')) frame.event = line.slice(6).trim()
    else if (line.startsWith('data:')) data = line.slice(5).trimStart()
  }
  if (frame.event === 'stdout' && data !== undefined) {
    const event = JSON.parse(data) as { spid?: number; data?: { value?: string; encoding?: string } }
    if ((event.spid ?? MAIN_SPID) === MAIN_SPID) {
      const value = event.data?.value ?? ''
      frame.stdout = event.data?.encoding === 'base64' ? Buffer.from(value, 'base64') : Buffer.from(value, 'utf8')
    }
  }
  return frame
}

/** True when `tail` (the last bytes of a text) ends inside a UTF-8 character. */
export function endsInsideCharacter(tail: Buffer): boolean {
  for (let back = 1; back <= Math.min(4, tail.length); back++) {
    const byte = tail[tail.length - back] as number
    if ((byte & 0xc0) === 0x80) continue
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1
    return back < needed
  }
  return false
}

/** Offset just after the first byte of the first multi-byte character in `text`, or -1. */
export function insideFirstMultiByteCharacter(text: Buffer): number {
  for (let i = 0; i < text.length; i++) {
    if ((text[i] as number) >= 0xc0) return i + 1
  }
  return -1
}
