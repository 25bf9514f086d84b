/**
 * One operation's event log as the replay server sends it, built once before any timing starts:
 * SSE frames exactly as protocol §2.9 has them (`id:`, `event:`, one `data:` line holding the whole
 * event JSON), stdout chunks under the ascii/base64 rule of §3.1, and the body pre-compressed as one
 * gzip stream with a Z_SYNC_FLUSH after every frame, like the real service flushes every chunk.
 *
 * Each frame is deflated on its own (a raw deflate segment ending in a sync flush), and the segments
 * are concatenated inside one gzip header and trailer. That is a valid gzip stream that decodes
 * frame by frame, and it lets a resumed request (Last-Event-Id) reuse the same frames. The body is
 * then framed for the wire once (chunked, one HTTP chunk per segment), so serving it is a few
 * large socket writes.
 */
import { constants as zlib, crc32, deflateRawSync } from 'node:zlib'
import { generatePayload, type PayloadKind } from './payloads.ts'

export interface ReplaySpec {
  payload: PayloadKind
  /** Remote stdout bytes per stdout event. */
  eventBytes: number
  /** Remote stdout bytes in all. */
  totalBytes: number
}

export interface ReplayLog {
  spec: ReplaySpec
  operationId: string
  imageId: string
  /** SSE text of each frame, in id order (frame i carries event id i). */
  frames: Buffer[]
  /**
   * A full replay as it goes on the wire: the gzip body (header, one segment per frame, final
   * block, trailer) in chunked framing, one HTTP chunk per segment, packed into large blocks.
   */
  wire: Buffer[]
  sseBytes: number
  /** Compressed body bytes (without the chunked framing). */
  wireBytes: number
  stdoutEvents: number
}

const DEFLATE = { level: 1, strategy: zlib.Z_RLE, finishFlush: zlib.Z_SYNC_FLUSH } as const
// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unix
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03])
const STARTED_AT = Date.parse('2026-06-08T20:00:00Z')

/** Bytes that are all printable ASCII (or tab/LF/CR) travel as text, anything else as base64 (§3.1). */
function encodeChunk(bytes: Buffer): { value: string; encoding: 'ascii' | 'base64' } {
  for (const b of bytes) {
    if ((b < 32 || b > 126) && b !== 9 && b !== 10 && b !== 13) return { value: bytes.toString('base64'), encoding: 'base64' }
  }
  return { value: bytes.toString('latin1'), encoding: 'ascii' }
}

function frame(id: number, spid: number, type: string, data: unknown): Buffer {
  const event = JSON.stringify({ id, ts: new Date(STARTED_AT + id).toISOString(), spid, type, data })
  return Buffer.from(`id: ${id}\nevent: ${type}\ndata: ${event}\n\n`)
}

/** The gzip body for `frames`, one sync-flushed deflate segment per frame. */
export function gzipFrames(frames: readonly Buffer[]): Buffer[] {
  const body: Buffer[] = [GZIP_HEADER]
  let crc = 0
  let size = 0
  for (const text of frames) {
    // A copy: zlib's output is a view of a much larger buffer, which 100,000 frames would keep alive.
    body.push(Buffer.from(deflateRawSync(text, DEFLATE)))
    crc = crc32(text, crc)
    size += text.length
  }
  const trailer = Buffer.alloc(8)
  trailer.writeUInt32LE(crc >>> 0, 0)
  trailer.writeUInt32LE(size % 2 ** 32, 4)
  body.push(deflateRawSync(Buffer.alloc(0), { finishFlush: zlib.Z_FINISH }), trailer)
  return body
}

export function buildReplayLog(spec: ReplaySpec, operationId: string, imageId: string): ReplayLog {
  const payload = generatePayload(spec.payload, spec.totalBytes)
  const frames: Buffer[] = []
  frames.push(frame(0, 0, 'init', { started_at: '2026-06-08T20:00:00.000000000Z', runtime_path: '/run/contreeinitd', verbose: false, init_pid: 1 }))
  frames.push(
    frame(1, 1, 'spawn', { pid: 42, command: '/bin/sh', args: ['-c', 'replay'], shell: true, cwd: '/', uid: 0, gid: 0, timeout: 300, truncate_at: spec.totalBytes }),
  )
  let stdoutEvents = 0
  for (let offset = 0; offset < payload.length; offset += spec.eventBytes) {
    frames.push(frame(frames.length, 1, 'stdout', encodeChunk(payload.subarray(offset, offset + spec.eventBytes))))
    stdoutEvents++
  }
  const resources = Object.fromEntries(
    ['user_time_us', 'sys_time_us', 'max_rss_kb', 'shared_memory', 'unshared_memory', 'swaps', 'minor_faults', 'major_faults', 'voluntary_ctx_switches', 'involuntary_ctx_switches', 'block_input_ops', 'block_output_ops', 'ipc_msgs_sent', 'ipc_msgs_received', 'signals_received'].map((name) => [name, 0]),
  )
  frames.push(frame(frames.length, 1, 'exit', { pid: 42, code: 0, signal: -1, timed_out: false, duration_ms: 1000, resources }))
  frames.push(frame(frames.length, 0, 'completion', { status: 'SUCCESS', duration_ms: 1000, result_image_uuid: null, error: null }))
  const body = gzipFrames(frames)
  return {
    wire: chunkedBlocks(body),
    spec,
    operationId,
    imageId,
    frames,
    sseBytes: frames.reduce((sum, text) => sum + text.length, 0),
    wireBytes: body.reduce((sum, part) => sum + part.length, 0),
    stdoutEvents,
  }
}

/** Wire bytes per socket write: many HTTP chunks each, so the server spends next to no CPU. */
const BLOCK_BYTES = 256 * 1024
const CRLF = Buffer.from('\r\n')
const LAST_CHUNK = Buffer.from('0\r\n\r\n')

/**
 * The body in HTTP/1.1 chunked framing, one chunk per gzip segment (as the service flushes each
 * frame), packed into large blocks. Framing it here rather than through ServerResponse.write costs
 * nothing per chunk while a stream is timed: at 1 KiB events Node's own framing of 100,000 writes
 * took this process about 60 % of a core, next to the reader it is supposed not to slow down.
 */
export function chunkedBlocks(segments: readonly Buffer[]): Buffer[] {
  const blocks: Buffer[] = []
  let pending: Buffer[] = []
  let size = 0
  const flush = (): void => {
    blocks.push(Buffer.concat(pending, size))
    pending = []
    size = 0
  }
  for (const segment of segments) {
    if (segment.length === 0) continue
    const head = Buffer.from(`${segment.length.toString(16)}\r\n`)
    pending.push(head, segment, CRLF)
    size += head.length + segment.length + CRLF.length
    if (size >= BLOCK_BYTES) flush()
  }
  pending.push(LAST_CHUNK)
  size += LAST_CHUNK.length
  flush()
  return blocks
}

