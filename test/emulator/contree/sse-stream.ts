// GET /v1/operations/{id}/events: replays the retained log (or follows it live), honouring
// Last-Event-Id and spid, with keepalives on idle follow streams and the stream faults.
import type { ServerResponse } from 'node:http'
import { sseFrame, type LoggedEvent } from './event-log.ts'
import type { Operation } from './operations.ts'
import { SseWriter } from './sse-writer.ts'
import type { StreamFaultAction } from './types.ts'

export interface EventStreamRequest {
  follow: boolean
  /** Only events with a greater id are sent (-1: all). */
  afterId: number
  spid: number | null
  keepaliveMs: number
  gzip: boolean
  fault: StreamFaultAction | undefined
}

/** Upper bound of uncompressed bytes per write, so one huge backlog does not become one huge buffer. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024
const KEEPALIVE = ': keepalive\n\n'
const SSE_ERROR =
  ': stream ended with error, retry since last event id\n\nevent: sse_error\ndata: upstream event source closed unexpectedly\n\n'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export async function streamEvents(res: ServerResponse, op: Operation, request: EventStreamRequest): Promise<void> {
  res.setHeader('Content-Type', 'text/event-stream')
  res.setHeader('Cache-Control', 'no-cache')
  res.setHeader('Connection', 'close')
  if (request.gzip) res.setHeader('Content-Encoding', 'gzip')
  res.writeHead(200)
  res.flushHeaders()
  const writer = new SseWriter(res, request.gzip)
  const fault = request.fault

  if (fault?.kind === 'keepalive-only') {
    for (let i = 0; i < (fault.count ?? 3); i++) await writer.write(KEEPALIVE)
    return writer.end()
  }

  const log = op.log
  let cursor = Math.max(0, request.afterId + 1)
  let framesSent = 0
  let bytesSent = 0
  // Frames allowed before an afterEvents fault fires (Infinity when none).
  const eventLimit =
    fault &&
    (fault.kind === 'sse-error' ||
      fault.kind === 'broken-chunking' ||
      fault.kind === 'truncated-gzip' ||
      fault.kind === 'corrupt-gzip' ||
      fault.kind === 'stall')
      ? fault.afterEvents
      : fault?.kind === 'cut-stream' && fault.afterBytes === undefined
        ? (fault.afterEvents ?? 0)
        : Infinity
  const byteLimit = fault?.kind === 'cut-stream' && fault.afterBytes !== undefined ? fault.afterBytes : Infinity
  const dripMs = fault?.kind === 'slow-drip' ? fault.delayMs : 0

  const wanted = (event: LoggedEvent) => request.spid === null || event.spid === request.spid

  const nextFrames = (): Buffer[] => {
    const frames: Buffer[] = []
    let size = 0
    while (cursor < log.events.length && framesSent + frames.length < eventLimit && size < MAX_BATCH_BYTES) {
      const event = log.events[cursor] as LoggedEvent
      if (!wanted(event)) {
        cursor++
        continue
      }
      const frame = Buffer.from(sseFrame(event))
      if (bytesSent + size + frame.length > byteLimit) break
      frames.push(frame)
      size += frame.length
      cursor++
      if (dripMs > 0) break
    }
    return frames
  }

  /** The next wanted frame without consuming it, waiting for it while following. */
  const peekFrame = async (): Promise<Buffer | null> => {
    for (;;) {
      while (cursor < log.events.length && !wanted(log.events[cursor] as LoggedEvent)) cursor++
      if (cursor < log.events.length) return Buffer.from(sseFrame(log.events[cursor] as LoggedEvent))
      if (log.finished || !request.follow || writer.closed) return null
      await Promise.race([log.changed(), writer.whenClosed()])
    }
  }

  const fireFault = async (): Promise<void> => {
    switch (fault?.kind) {
      case 'sse-error':
        await writer.write(SSE_ERROR)
        return writer.end()
      case 'broken-chunking':
        return writer.breakChunking()
      case 'truncated-gzip':
        return writer.endWithoutGzipTrailer()
      case 'corrupt-gzip':
        return writer.corruptGzip()
      case 'stall':
        // Silence without a close: no frames, no keepalives, until the client (or close()) gives up.
        return writer.whenClosed()
      case 'cut-stream': {
        // Cut inside the next frame: some but not all of its bytes go out.
        const frame = (await peekFrame()) ?? Buffer.from(`id: ${cursor}\nevent: `)
        const keep = Number.isFinite(byteLimit)
          ? byteLimit - bytesSent
          : fault.within === 'utf8-character'
            ? (insideFirstMultibyteCharacter(frame) ?? Math.floor(frame.length / 2))
            : Math.floor(frame.length / 2)
        const partial = frame.subarray(0, Math.min(Math.max(keep, 1), frame.length - 1))
        if (fault.partialChunk) return writer.cutInsideChunk(partial)
        await writer.write(partial)
        return writer.cut()
      }
      default:
        return writer.end()
    }
  }

  const limitReached = () =>
    framesSent >= eventLimit ||
    (Number.isFinite(byteLimit) && cursor < log.events.length && wanted(log.events[cursor] as LoggedEvent) &&
      bytesSent + Buffer.byteLength(sseFrame(log.events[cursor] as LoggedEvent)) > byteLimit)

  while (!writer.closed) {
    if (limitReached()) return fireFault()
    const frames = nextFrames()
    if (frames.length > 0) {
      const batch = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames)
      await writer.write(batch)
      framesSent += frames.length
      bytesSent += batch.length
      if (dripMs > 0) await sleep(dripMs)
      continue
    }
    if (cursor < log.events.length) continue
    if (log.finished || !request.follow) {
      // A log that ends before an afterEvents/afterBytes fault fired still gets its fault at the end.
      if (fault && fault.kind !== 'slow-drip' && fault.kind !== 'events-unavailable') return fireFault()
      return writer.end()
    }
    let timer: NodeJS.Timeout | undefined
    const idle = new Promise<'idle'>((resolve) => {
      timer = setTimeout(() => resolve('idle'), request.keepaliveMs)
    })
    const woke = await Promise.race([log.changed().then(() => 'event' as const), idle, writer.whenClosed()])
    clearTimeout(timer)
    if (woke === 'idle') await writer.write(KEEPALIVE)
  }
}

/** The offset just after the lead byte of the first multi-byte UTF-8 character (a cut there splits it). */
function insideFirstMultibyteCharacter(frame: Buffer): number | null {
  const lead = frame.findIndex((byte) => byte >= 0xc0)
  return lead < 0 ? null : lead + 1
}
