// The ascii/base64 rule shared by server and clients (protocol §3.1): printable ASCII plus
// tab/LF/CR travel as text, anything else as base64 of the raw bytes.

export interface StreamRepr {
  value: string
  encoding: 'ascii' | 'base64'
  truncated?: boolean
}

export function isPlainAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number
    if (b >= 32 && b <= 126) continue
    if (b === 9 || b === 10 || b === 13) continue
    return false
  }
  return true
}

export function encodeStream(bytes: Buffer, truncated?: boolean): StreamRepr {
  const repr: StreamRepr = isPlainAscii(bytes)
    ? { value: bytes.toString('latin1'), encoding: 'ascii' }
    : { value: bytes.toString('base64'), encoding: 'base64' }
  if (truncated !== undefined) repr.truncated = truncated
  return repr
}

/** Decodes a ClosableStreamRepr-like input (spawn stdin). */
export function decodeStream(repr: { value?: unknown; encoding?: unknown }): Buffer {
  const value = typeof repr.value === 'string' ? repr.value : ''
  return repr.encoding === 'base64' ? Buffer.from(value, 'base64') : Buffer.from(value, 'utf8')
}
