/**
 * Reads HTTP/1.1 requests off a raw client connection, one complete request (head and body) at a
 * time. The chaos proxy works on raw sockets so that it can answer, cut or stall at any byte; this
 * is the part that tells where one request ends and the next begins on a keep-alive connection.
 */

export interface RawRequest {
  method: string
  /** Request target as sent: path and query. */
  target: string
  /** Path without the query. */
  path: string
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>
  body: Buffer
}

const HEAD_END = Buffer.from('\r\n\r\n')
const CRLF = Buffer.from('\r\n')
const MAX_HEAD_BYTES = 64 * 1024

export class RequestReader {
  #buffer: Buffer = Buffer.alloc(0)

  feed(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
  }

  /** True when some bytes of a request that is not complete yet have arrived. */
  get hasPartial(): boolean {
    return this.#buffer.length > 0
  }

  /** The next complete request, or undefined until more bytes arrive. Throws on bytes that are not HTTP. */
  next(): RawRequest | undefined {
    const headEnd = this.#buffer.indexOf(HEAD_END)
    if (headEnd === -1) {
      if (this.#buffer.length > MAX_HEAD_BYTES) throw new Error('request head too large')
      return undefined
    }
    const lines = this.#buffer.toString('latin1', 0, headEnd).split('\r\n')
    const requestLine = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? '')
    if (!requestLine) throw new Error(`not an HTTP/1.1 request line: ${JSON.stringify(lines[0])}`)
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      if (colon <= 0) throw new Error(`malformed header line: ${JSON.stringify(line)}`)
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    }
    const bodyStart = headEnd + HEAD_END.length
    const body = /chunked/i.test(headers['transfer-encoding'] ?? '')
      ? this.#chunkedBody(bodyStart)
      : this.#sizedBody(bodyStart, Number(headers['content-length'] ?? 0))
    if (body === undefined) return undefined
    this.#buffer = this.#buffer.subarray(body.end)
    const target = requestLine[2] as string
    return { method: requestLine[1] as string, target, path: target.split('?')[0] ?? target, headers, body: body.bytes }
  }

  #sizedBody(start: number, length: number): { bytes: Buffer; end: number } | undefined {
    if (!Number.isInteger(length) || length < 0) throw new Error('bad content-length')
    if (this.#buffer.length < start + length) return undefined
    return { bytes: Buffer.from(this.#buffer.subarray(start, start + length)), end: start + length }
  }

  #chunkedBody(start: number): { bytes: Buffer; end: number } | undefined {
    const parts: Buffer[] = []
    let at = start
    for (;;) {
      const lineEnd = this.#buffer.indexOf(CRLF, at)
      if (lineEnd === -1) return undefined
      const size = Number.parseInt(this.#buffer.toString('latin1', at, lineEnd).split(';')[0] ?? '', 16)
      if (!Number.isInteger(size) || size < 0) throw new Error('bad chunk size in request body')
      const dataStart = lineEnd + CRLF.length
      if (size === 0) {
        // No trailers are ever sent by the action: the terminal chunk is followed by one CRLF.
        if (this.#buffer.length < dataStart + CRLF.length) return undefined
        return { bytes: Buffer.concat(parts), end: dataStart + CRLF.length }
      }
      if (this.#buffer.length < dataStart + size + CRLF.length) return undefined
      parts.push(Buffer.from(this.#buffer.subarray(dataStart, dataStart + size)))
      at = dataStart + size + CRLF.length
    }
  }
}
