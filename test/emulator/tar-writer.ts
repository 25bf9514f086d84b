/**
 * A small, deterministic POSIX tar writer for building image layers in tests without Docker.
 * Same input → same bytes: fixed mtime, numeric owners (0:0 unless an entry says otherwise),
 * entries sorted, parents created. Names that do not fit ustar's 100+155 split get a pax extended header.
 */

export type TarEntryInput =
  | string
  | Uint8Array
  | {
      content?: string | Uint8Array
      /** Permission bits including setuid/setgid/sticky (e.g. 0o1777 for /tmp). */
      mode?: number
      type?: 'file' | 'dir' | 'symlink'
      target?: string
      /** Numeric owner; extractors must use --numeric-owner (names are not looked up). */
      uid?: number
      gid?: number
    }

/** Paths are relative to the image root (a leading '/' is dropped); a trailing '/' means a directory. */
export type TarFiles = Record<string, TarEntryInput>

interface Entry {
  path: string
  type: 'file' | 'dir' | 'symlink'
  mode: number
  content: Uint8Array
  target: string
  uid: number
  gid: number
}

const BLOCK = 512
// A fixed, non-zero time: some extractors warn about mtime 0, and any constant keeps digests stable.
const FIXED_MTIME = 1_700_000_000
const encoder = new TextEncoder()

export function buildTar(files: TarFiles): Uint8Array {
  const entries = normalise(files)
  const chunks: Uint8Array[] = []
  for (const entry of entries) {
    const name = entry.type === 'dir' ? `${entry.path}/` : entry.path
    const split = splitUstarName(name)
    const linkTooLong = encoder.encode(entry.target).length > 100
    if (split === undefined || linkTooLong) {
      const records: Record<string, string> = {}
      if (split === undefined) records['path'] = name
      if (linkTooLong) records['linkpath'] = entry.target
      const pax = paxBody(records)
      chunks.push(header({ name: 'PaxHeader', prefix: '', type: 'x', mode: 0o644, size: pax.length, linkname: '', uid: 0, gid: 0 }), pad(pax))
    }
    const { prefix, base } = split ?? { prefix: '', base: truncateBytes(name, 100) }
    const typeFlag = entry.type === 'dir' ? '5' : entry.type === 'symlink' ? '2' : '0'
    const size = entry.type === 'file' ? entry.content.length : 0
    chunks.push(
      header({ name: base, prefix, type: typeFlag, mode: entry.mode, size, linkname: linkTooLong ? '' : entry.target, uid: entry.uid, gid: entry.gid }),
    )
    if (entry.type === 'file') chunks.push(pad(entry.content))
  }
  // End of archive: two zero blocks.
  chunks.push(new Uint8Array(BLOCK * 2))
  return concat(chunks)
}

function normalise(files: TarFiles): Entry[] {
  const byPath = new Map<string, Entry>()
  for (const [rawPath, input] of Object.entries(files)) {
    const isDirKey = rawPath.endsWith('/')
    const path = rawPath.replace(/^\/+/, '').replace(/\/+$/, '')
    if (path === '' || path.split('/').some((p) => p === '' || p === '.' || p === '..')) {
      throw new Error(`tar-writer: unusable path "${rawPath}"`)
    }
    let entry: Entry
    if (typeof input === 'string' || input instanceof Uint8Array) {
      entry = isDirKey
        ? { path, type: 'dir', mode: 0o755, content: new Uint8Array(), target: '', uid: 0, gid: 0 }
        : { path, type: 'file', mode: 0o644, content: toBytes(input), target: '', uid: 0, gid: 0 }
    } else {
      const type = input.type ?? (isDirKey ? 'dir' : 'file')
      entry = {
        path,
        type,
        mode: input.mode ?? (type === 'file' ? 0o644 : type === 'dir' ? 0o755 : 0o777),
        content: type === 'file' ? toBytes(input.content ?? '') : new Uint8Array(),
        target: type === 'symlink' ? (input.target ?? '') : '',
        uid: input.uid ?? 0,
        gid: input.gid ?? 0,
      }
      for (const id of [entry.uid, entry.gid]) {
        if (!Number.isInteger(id) || id < 0 || id > 0o7777777) throw new Error(`tar-writer: owner of "${rawPath}" must be 0..2097151`)
      }
      if (type === 'symlink' && entry.target === '') throw new Error(`tar-writer: symlink "${rawPath}" needs a target`)
    }
    byPath.set(path, entry)
  }
  // Extractors expect parents before children; create the ones the caller left implicit.
  for (const path of [...byPath.keys()]) {
    const parts = path.split('/')
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/')
      if (!byPath.has(parent)) byPath.set(parent, { path: parent, type: 'dir', mode: 0o755, content: new Uint8Array(), target: '', uid: 0, gid: 0 })
    }
  }
  // Byte-wise order of the path puts every parent directly before its children.
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

function splitUstarName(name: string): { prefix: string; base: string } | undefined {
  const bytes = encoder.encode(name)
  if (bytes.length <= 100) return { prefix: '', base: name }
  if (bytes.length > 256) return undefined
  // The prefix/name boundary must fall on a '/', which is not stored.
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue
    const prefix = name.slice(0, i)
    const base = name.slice(i + 1)
    if (encoder.encode(prefix).length <= 155 && encoder.encode(base).length <= 100 && base !== '') return { prefix, base }
  }
  return undefined
}

interface HeaderFields {
  name: string
  prefix: string
  type: string
  mode: number
  size: number
  linkname: string
  uid: number
  gid: number
}

function header(fields: HeaderFields): Uint8Array {
  const block = new Uint8Array(BLOCK)
  writeString(block, 0, 100, fields.name)
  writeOctal(block, 100, 8, fields.mode & 0o7777)
  writeOctal(block, 108, 8, fields.uid)
  writeOctal(block, 116, 8, fields.gid)
  writeOctal(block, 124, 12, fields.size)
  writeOctal(block, 136, 12, FIXED_MTIME)
  block.fill(0x20, 148, 156) // checksum is computed with its own field as spaces
  writeString(block, 156, 1, fields.type)
  writeString(block, 157, 100, fields.linkname)
  writeString(block, 257, 6, 'ustar') // magic "ustar\0"
  writeString(block, 263, 2, '00')
  // Owner names only where they are certain; extraction goes by the numeric ids.
  writeString(block, 265, 32, fields.uid === 0 ? 'root' : '')
  writeString(block, 297, 32, fields.gid === 0 ? 'root' : '')
  writeString(block, 345, 155, fields.prefix)
  let sum = 0
  for (const byte of block) sum += byte
  // Six octal digits, NUL, space: the traditional layout every reader accepts.
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `)
  return block
}

function paxBody(records: Record<string, string>): Uint8Array {
  let text = ''
  for (const [key, value] of Object.entries(records)) {
    // Each record is "<len> key=value\n" where len counts itself, so find the fixed point.
    const rest = ` ${key}=${value}\n`
    const restLength = encoder.encode(rest).length
    let length = restLength + 1
    while (String(length).length + restLength !== length) length = String(length).length + restLength
    text += `${length}${rest}`
  }
  return encoder.encode(text)
}

function writeString(block: Uint8Array, offset: number, size: number, value: string): void {
  block.set(encoder.encode(value).subarray(0, size), offset)
}

function writeOctal(block: Uint8Array, offset: number, size: number, value: number): void {
  writeString(block, offset, size, `${value.toString(8).padStart(size - 1, '0')}\0`)
}

function truncateBytes(value: string, size: number): string {
  return new TextDecoder().decode(encoder.encode(value).subarray(0, size))
}

function pad(data: Uint8Array): Uint8Array {
  const padded = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK)
  padded.set(data)
  return padded
}

function toBytes(content: string | Uint8Array): Uint8Array {
  return typeof content === 'string' ? encoder.encode(content) : content
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.length
  }
  return out
}
