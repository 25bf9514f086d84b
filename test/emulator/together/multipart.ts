// A streaming multipart/form-data parser (RFC 7578): part bodies go to a sink chunk by chunk with
// backpressure, so a context of hundreds of MB never sits in memory. Only a boundary's worth of bytes is held
// back at any time, in case a delimiter straddles two chunks.

export class MultipartError extends Error {}

export interface PartInfo {
  name: string
  /** Present for file parts. */
  filename: string | null
  contentType: string | null
}

export interface PartSink {
  write(chunk: Buffer): Promise<void> | void
  end(): Promise<void> | void
}

type ParserState = 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'epilogue'

const MAX_HEADER_BYTES = 16 * 1024
const MAX_PARTS = 64
const CRLF = Buffer.from('\r\n')
const HEADER_END = Buffer.from('\r\n\r\n')

/** The boundary of a `multipart/form-data` Content-Type, or null when the header is not one. */
export function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType) return null
  const [type, ...params] = contentType.split(';')
  if (type?.trim().toLowerCase() !== 'multipart/form-data') return null
  for (const param of params) {
    const eq = param.indexOf('=')
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'boundary') continue
    let value = param.slice(eq + 1).trim()
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1)
    if (value.length >= 1 && value.length <= 70) return value
  }
  return null
}

/** `form-data; name="x"; filename="y"` → its parameters (quoted strings unescaped). */
function dispositionParams(header: string): Map<string, string> {
  const params = new Map<string, string>()
  const re = /;\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g
  for (const match of header.matchAll(re)) {
    const key = (match[1] as string).toLowerCase()
    const value = match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : (match[3] ?? '')
    params.set(key, value)
  }
  return params
}

function parseHeaders(block: Buffer): PartInfo {
  let disposition: string | null = null
  let contentType: string | null = null
  for (const line of block.toString('utf8').split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new MultipartError(`malformed part header: ${JSON.stringify(line)}`)
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-disposition') disposition = value
    else if (name === 'content-type') contentType = value
  }
  if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw new MultipartError('part without Content-Disposition: form-data')
  const params = dispositionParams(disposition)
  const name = params.get('name')
  if (name === undefined || name === '') throw new MultipartError('part without a name')
  return { name, filename: params.has('filename') ? (params.get('filename') as string) : null, contentType }
}

/**
 * Reads `source` to its end. For each part, `onPart` returns where its body goes. Throws MultipartError on
 * malformed input (missing final delimiter included).
 */
export async function parseMultipart(
  source: AsyncIterable<Buffer>,
  boundary: string,
  onPart: (info: PartInfo) => PartSink,
): Promise<void> {
  const delimiter = Buffer.from(`\r\n--${boundary}`)
  // The first delimiter may start the body without a preceding CRLF; pretend there was one.
  let buffer: Buffer = CRLF
  let state = 'preamble' as ParserState
  let sink: PartSink | null = null
  let parts = 0

  const step = async (final: boolean): Promise<boolean> => {
    switch (state) {
      case 'preamble': {
        const at = buffer.indexOf(delimiter)
        if (at < 0) {
          buffer = buffer.subarray(Math.max(0, buffer.length - delimiter.length + 1))
          return false
        }
        buffer = buffer.subarray(at + delimiter.length)
        state = 'after-delimiter'
        return true
      }
      case 'after-delimiter': {
        if (buffer.length < 2) return false
        if (buffer[0] === 0x2d && buffer[1] === 0x2d) {
          state = 'epilogue'
          return true
        }
        // Transport padding (spaces/tabs) may precede the CRLF.
        const eol = buffer.indexOf(CRLF)
        if (eol < 0) {
          if (buffer.length > 256) throw new MultipartError('malformed delimiter line')
          return false
        }
        if (!/^[ \t]*$/.test(buffer.subarray(0, eol).toString('latin1'))) throw new MultipartError('malformed delimiter line')
        buffer = buffer.subarray(eol + 2)
        state = 'headers'
        return true
      }
      case 'headers': {
        const end = buffer.indexOf(HEADER_END)
        if (end < 0) {
          if (buffer.length > MAX_HEADER_BYTES) throw new MultipartError('part headers too large')
          return false
        }
        parts += 1
        if (parts > MAX_PARTS) throw new MultipartError(`more than ${MAX_PARTS} parts`)
        sink = onPart(parseHeaders(buffer.subarray(0, end)))
        buffer = buffer.subarray(end + 4)
        state = 'body'
        return true
      }
      case 'body': {
        const at = buffer.indexOf(delimiter)
        const current = sink as PartSink
        if (at >= 0) {
          if (at > 0) await current.write(buffer.subarray(0, at))
          await current.end()
          sink = null
          buffer = buffer.subarray(at + delimiter.length)
          state = 'after-delimiter'
          return true
        }
        // Keep the bytes that could still be the start of a delimiter.
        const safe = final ? buffer.length : buffer.length - delimiter.length + 1
        if (safe > 0) {
          await current.write(buffer.subarray(0, safe))
          buffer = buffer.subarray(safe)
        }
        return false
      }
      case 'epilogue':
        buffer = Buffer.alloc(0)
        return false
    }
  }

  for await (const chunk of source) {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    while (await step(false)) {
      // keep consuming what the buffer holds
    }
  }
  while (await step(true)) {
    // drain
  }
  // `state` changes inside step(); the cast keeps TypeScript from narrowing it to its first value.
  if ((state as ParserState) !== 'epilogue') throw new MultipartError('multipart body ended before its closing delimiter')
}
