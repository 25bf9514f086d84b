/**
 * Relays one event stream from the service to the action, re-encoded by StreamEncoder so that every
 * wire byte is known, and strikes with the stream fault whose moment has come: at the start of the
 * response or after the frame that brings the delivered output to the rule's payload byte.
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { constants as zlibConstants, createGunzip } from 'node:zlib'
import type { FaultRule } from './plan.ts'
import { endsInsideCharacter, FrameSplitter, insideFirstMultiByteCharacter, type SseFrame } from './sse-frames.ts'
import { StreamEncoder } from './stream-encoder.ts'

const SSE_ERROR = Buffer.from(': stream ended with error, retry since last event id\n\nevent: sse_error\ndata: upstream event source closed unexpectedly\n\n')

/** What the action has been sent of the operation's events, over all its connections. */
export class DeliveryTracker {
  /** Bytes of the main process's stdout sent, each event counted once. */
  progress = 0
  lastId = -1
  /** The last bytes of that stdout, to tell whether it ends inside a character. */
  tail: Buffer = Buffer.alloc(0)

  record(frame: SseFrame): void {
    if (frame.id === undefined || frame.id <= this.lastId) return
    this.lastId = frame.id
    if (frame.stdout.length === 0) return
    this.progress += frame.stdout.length
    this.tail = Buffer.concat([this.tail, frame.stdout.subarray(-4)]).subarray(-4)
  }
}

export interface RelayContext {
  delivery: DeliveryTracker
  /** The next stream rule whose moment has come, taken so it strikes once. `atStart`: no byte sent yet. */
  take(atStart: boolean): FaultRule | undefined
  /** What the fault did, for the run's log; `happened`: the stream was really broken that way. */
  effect(rule: FaultRule, what: string, happened: boolean): void
}

export type RelayEnd = 'end' | 'cut' | 'stall' | 'client-closed' | 'upstream-failed'

export function relayEventStream(upstream: IncomingMessage, abortUpstream: () => void, socket: Socket, ctx: RelayContext): Promise<RelayEnd> {
  const gzip = /gzip/i.test(String(upstream.headers['content-encoding'] ?? ''))
  const encoder = new StreamEncoder(gzip)
  const head = ['HTTP/1.1 200 OK', 'Content-Type: text/event-stream', 'Cache-Control: no-cache', ...(gzip ? ['Content-Encoding: gzip'] : []), 'Transfer-Encoding: chunked', 'Connection: close', '', '']
  socket.write(head.join('\r\n'))

  return new Promise<RelayEnd>((resolve) => {
    let ended = false
    let wire = 0
    let rule: FaultRule | undefined
    /** A cut or a stall at this wire byte (of the body). */
    let limit: { at: number; then: 'cut' | 'stall' } | undefined
    /** Looking for the first place to cut inside a character. */
    let huntCharacter = false
    /** Text bytes still to send before the body ends without its gzip trailer. */
    let truncateAfter: number | undefined

    const source = gzip ? upstream.pipe(createGunzip({ flush: zlibConstants.Z_SYNC_FLUSH })) : upstream

    const finish = (how: RelayEnd): void => {
      if (ended) return
      ended = true
      abortUpstream()
      source.removeAllListeners('data')
      if (how === 'cut') {
        // Only once the bytes before the cut are in the kernel: the cut is at that byte, not earlier.
        socket.write(Buffer.alloc(0), () => socket.destroy())
      } else if (how === 'end' || how === 'upstream-failed') {
        if (how === 'upstream-failed') socket.destroy()
        else socket.end()
      }
      // A stall leaves the socket open and silent; the action has to notice by itself.
      if (how !== 'stall') resolve(how)
    }
    socket.once('close', () => {
      if (!ended) {
        ended = true
        abortUpstream()
      }
      resolve('client-closed')
    })

    const send = (bytes: Buffer): boolean => {
      if (ended) return false
      if (bytes.length === 0) return true
      if (limit !== undefined && wire + bytes.length >= limit.at) {
        const part = bytes.subarray(0, limit.at - wire)
        if (part.length > 0) socket.write(part)
        wire = limit.at
        if (rule) ctx.effect(rule, `${limit.then} at wire byte ${limit.at}`, true)
        finish(limit.then)
        return false
      }
      if (!socket.write(bytes) && !socket.destroyed) {
        // Respect the action's pace: the service's stream waits while the action's socket is full.
        source.pause()
        socket.once('drain', () => source.resume())
      }
      wire += bytes.length
      return true
    }

    const endBy = (taken: FaultRule, what: string): void => {
      ctx.effect(taken, what, true)
      finish('end')
    }

    const strike = (taken: FaultRule): void => {
      rule = taken
      const action = taken.action
      ctx.effect(taken, `struck at wire byte ${wire}, after ${ctx.delivery.progress} payload bytes (last event id ${ctx.delivery.lastId})`, false)
      switch (action.kind) {
        case 'cut':
          limit = { at: wire + action.afterBytes, then: 'cut' }
          return
        case 'stall':
          limit = { at: wire + action.afterBytes, then: 'stall' }
          return
        case 'cut-in-char':
          huntCharacter = true
          return
        case 'truncated-gzip':
          if (action.afterTextBytes > 0) {
            truncateAfter = action.afterTextBytes
            return
          }
          if (send(gzip ? encoder.endWithoutTrailer() : encoder.brokenChunk())) endBy(taken, 'body ended without the gzip trailer at a frame boundary')
          return
        case 'sse-error':
          if (send(encoder.piece(SSE_ERROR)) && send(encoder.end())) endBy(taken, 'sse_error frame, then a clean end')
          return
        case 'clean-end':
          if (send(encoder.end())) endBy(taken, 'clean end without a completion frame')
          return
        case 'broken-chunking':
          if (send(encoder.brokenChunk())) endBy(taken, 'chunk-size line that is not hex')
          return
        case 'corrupt-gzip':
        case 'corrupt-gzip-header':
          // Without gzip there is nothing to corrupt; broken framing is the nearest thing.
          if (send(gzip ? encoder.corruptThenEnd() : encoder.brokenChunk())) endBy(taken, 'an invalid deflate block at a flush boundary')
          return
        default:
          // Request-level actions never reach a stream.
          return
      }
    }

    /** Sends a frame, or the part of it a hunting fault allows; false once the stream is over. */
    const sendFrame = (frame: SseFrame): boolean => {
      if (huntCharacter && rule) {
        const inside = insideFirstMultiByteCharacter(frame.text)
        if (inside !== -1) {
          if (send(encoder.piece(frame.text.subarray(0, inside)))) {
            ctx.effect(rule, `cut inside a character of the SSE text (frame ${frame.id ?? 'without id'}, byte ${inside - 1})`, true)
            finish('cut')
          }
          return false
        }
      }
      if (truncateAfter !== undefined && rule) {
        if (frame.text.length >= truncateAfter) {
          const sent = send(encoder.piece(frame.text.subarray(0, truncateAfter)))
          if (sent && send(encoder.endWithoutTrailer())) {
            ctx.effect(rule, `body ended without the gzip trailer, ${truncateAfter} bytes into frame ${frame.id ?? 'without id'}`, true)
            finish('end')
          }
          return false
        }
        truncateAfter -= frame.text.length
      }
      return send(encoder.piece(frame.text))
    }

    const first = ctx.take(true)
    if (first?.action.kind === 'corrupt-gzip-header' && gzip) {
      rule = first
      ctx.effect(first, 'gzip header with an unknown compression method', true)
      if (send(encoder.corruptStart()) && send(encoder.endWithoutTrailer())) finish('end')
      return
    }
    // A cut or a stall counts its bytes from the very start of the body, gzip header included.
    const countsBytes = first?.action.kind === 'cut' || first?.action.kind === 'stall'
    if (first && countsBytes) strike(first)
    send(encoder.start())
    if (first && !countsBytes) strike(first)

    const splitter = new FrameSplitter()
    source.on('data', (text: Buffer) => {
      for (const frame of splitter.push(text)) {
        if (ended || !sendFrame(frame)) return
        ctx.delivery.record(frame)
        if (rule === undefined) {
          const next = ctx.take(false)
          if (next) strike(next)
        } else if (huntCharacter && frame.stdout.length > 0 && endsInsideCharacter(ctx.delivery.tail)) {
          ctx.effect(rule, `cut after event ${frame.id}, whose output ends inside a character`, true)
          finish('cut')
        }
        if (ended) return
      }
    })
    source.on('end', () => {
      if (ended) return
      // A frame without its blank line is sent as it came; the service never ends one that way.
      if (send(encoder.piece(splitter.remainder)) && send(encoder.end())) finish('end')
    })
    source.on('error', () => finish('upstream-failed'))
    upstream.on('error', () => finish('upstream-failed'))
  })
}
