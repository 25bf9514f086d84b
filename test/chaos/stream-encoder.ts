/**
 * Encodes an event-stream body the way the service does (protocol §1.4: chunked transfer, gzip with
 * a Z_SYNC_FLUSH after every piece), synchronously and piece by piece, so the chaos proxy knows which
 * wire bytes carry which text and can cut, corrupt or truncate at any one of them.
 *
 * Each piece is deflated on its own and ends on a sync-flush boundary (an empty stored block). A
 * deflate stream may be made of such independent runs of blocks, so the concatenation is one valid
 * gzip member, and the byte after a boundary is always the header of a new block.
 */
import { constants, crc32, deflateRawSync } from 'node:zlib'

/** ID1 ID2, CM=8 (deflate), no flags, no mtime, XFL 0, OS unknown. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff])
/** The same with CM=9: no inflater knows that compression method. */
const CORRUPT_GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x09, 0x00, 0, 0, 0, 0, 0x00, 0xff])
/** A block header with BTYPE=11 (reserved): "invalid block type", wherever a block may start. */
const INVALID_BLOCK = Buffer.from([0x06, 0x5a, 0xa5, 0x13, 0x37])
const TERMINAL_CHUNK = Buffer.from('0\r\n\r\n')

export function chunk(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')])
}

export class StreamEncoder {
  readonly gzip: boolean
  #crc = 0
  #size = 0

  constructor(gzip: boolean) {
    this.gzip = gzip
  }

  /** The first wire bytes of the body (the gzip header as a chunk of its own), if any. */
  start(): Buffer {
    return this.gzip ? chunk(GZIP_HEADER) : Buffer.alloc(0)
  }

  /** A gzip header the action cannot decode, in place of {@link start}. */
  corruptStart(): Buffer {
    return chunk(CORRUPT_GZIP_HEADER)
  }

  /** One piece of SSE text as a chunk, compressed and flushed so it decodes on arrival. */
  piece(text: Buffer): Buffer {
    if (text.length === 0) return Buffer.alloc(0)
    if (!this.gzip) return chunk(text)
    this.#crc = crc32(text, this.#crc)
    this.#size = (this.#size + text.length) % 2 ** 32
    return chunk(deflateRawSync(text, { level: 1, finishFlush: constants.Z_SYNC_FLUSH }))
  }

  /** A clean end: the final deflate block and the gzip trailer, then the terminal chunk. */
  end(): Buffer {
    if (!this.gzip) return TERMINAL_CHUNK
    const trailer = Buffer.alloc(8)
    trailer.writeUInt32LE(this.#crc >>> 0, 0)
    trailer.writeUInt32LE(this.#size >>> 0, 4)
    // An empty final block (fixed Huffman: 03 00) closes the deflate stream.
    return Buffer.concat([chunk(Buffer.concat([deflateRawSync(Buffer.alloc(0)), trailer])), TERMINAL_CHUNK])
  }

  /** The chunked body ends cleanly, but the gzip member never gets its final block or trailer. */
  endWithoutTrailer(): Buffer {
    return TERMINAL_CHUNK
  }

  /** Bytes that are not deflate data at a block boundary, then a clean chunked end. */
  corruptThenEnd(): Buffer {
    return Buffer.concat([chunk(INVALID_BLOCK), TERMINAL_CHUNK])
  }

  /** A chunk-size line that is not hexadecimal. */
  brokenChunk(): Buffer {
    return Buffer.from('zz\r\nnot a chunk\r\n')
  }
}
