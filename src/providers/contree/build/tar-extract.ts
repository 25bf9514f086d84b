/**
 * Reads a tar stream (ustar, PAX and GNU long names; gzip and zstd recognised and decompressed) into
 * a list of entries, writing each regular file's bytes to its own numbered file in `workDir` while
 * hashing it. Nothing is ever created at a path taken from the archive, so a hostile member name or
 * link cannot write outside `workDir`; member names themselves are still checked (no absolute path,
 * no `..`) because they become paths in the image.
 */
import { createHash } from 'node:crypto'
import { createWriteStream, type WriteStream } from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import * as zlib from 'node:zlib'

export interface TarEntry {
  /** Cleaned relative path (no leading "./" or "/", no trailing "/"). */
  name: string
  type: 'file' | 'dir' | 'symlink' | 'hardlink'
  /** Permission bits. */
  mode: number
  uid: number
  gid: number
  /** Link target (symlinks: as written; hardlinks: the cleaned name of the earlier member). */
  linkname?: string
  size: number
  /** Regular files: where the bytes were written, and their digest. */
  localPath?: string
  sha256?: string
}

export class TarError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TarError'
  }
}

const BLOCK = 512

/** Which compression the first bytes show; the caller refuses what it cannot unpack. */
export function sniffCompression(head: Uint8Array): 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd' {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return 'bzip2'
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a) return 'xz'
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd'
  return 'none'
}

/** Decompresses when the stream is gzip (or zstd, where Node has it); bzip2 and xz are refused. */
export function decompressed(head: Uint8Array, stream: Readable): Readable {
  const kind = sniffCompression(head)
  switch (kind) {
    case 'none':
      return stream
    case 'gzip':
      return stream.pipe(zlib.createGunzip())
    case 'zstd': {
      const create = (zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream }).createZstdDecompress
      if (create) return stream.pipe(create()) as unknown as Readable
      throw new TarError('the archive is zstd-compressed, which this Node.js cannot decompress')
    }
    default:
      throw new TarError(`the archive is ${kind}-compressed; the action unpacks plain, gzip and zstd tar archives only`)
  }
}

export async function extractTar(source: AsyncIterable<Uint8Array>, workDir: string): Promise<TarEntry[]> {
  const entries: TarEntry[] = []
  let buffer = Buffer.alloc(0)
  let pax: Record<string, string> = {}
  let longName: string | undefined
  let longLink: string | undefined
  let current: { entry: TarEntry; remaining: number; padding: number; out?: WriteStream; hash?: ReturnType<typeof createHash>; meta?: 'pax' | 'longname' | 'longlink' | 'skip'; metaChunks?: Buffer[] } | undefined
  let ended = false

  const finishBody = async (): Promise<void> => {
    if (!current) return
    const done = current
    current = undefined
    if (done.out) {
      await new Promise<void>((resolve, reject) => done.out?.end((error?: Error | null) => (error ? reject(error) : resolve())))
      done.entry.sha256 = done.hash?.digest('hex')
    }
    if (done.meta) {
      const text = Buffer.concat(done.metaChunks ?? []).toString('utf8')
      if (done.meta === 'pax') pax = parsePax(text)
      else if (done.meta === 'longname') longName = text.replace(/\0.*$/s, '')
      else if (done.meta === 'longlink') longLink = text.replace(/\0.*$/s, '')
    }
  }

  for await (const chunk of source) {
    buffer = buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([buffer, chunk])
    for (;;) {
      if (ended) break
      if (current) {
        if (current.remaining > 0) {
          if (buffer.length === 0) break
          const take = Math.min(current.remaining, buffer.length)
          const part = buffer.subarray(0, take)
          if (current.out) {
            current.hash?.update(part)
            if (!current.out.write(Buffer.from(part))) await new Promise<void>((resolve) => current?.out?.once('drain', () => resolve()))
          } else if (current.metaChunks) current.metaChunks.push(Buffer.from(part))
          buffer = buffer.subarray(take)
          current.remaining -= take
          continue
        }
        if (buffer.length < current.padding) break
        buffer = buffer.subarray(current.padding)
        await finishBody()
        continue
      }
      if (buffer.length < BLOCK) break
      const header = buffer.subarray(0, BLOCK)
      buffer = buffer.subarray(BLOCK)
      if (header.every((byte) => byte === 0)) {
        ended = true
        break
      }
      const typeflag = String.fromCharCode(header[156] ?? 0x30)
      const size = Number(pax.size ?? readNumber(header, 124, 12))
      const padding = (BLOCK - (size % BLOCK)) % BLOCK
      if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
        const meta = typeflag === 'x' ? 'pax' : typeflag === 'L' ? 'longname' : typeflag === 'K' ? 'longlink' : 'skip'
        if (size > 1024 * 1024) throw new TarError('a tar metadata header is larger than 1 MiB')
        current = { entry: { name: '', type: 'file', mode: 0, uid: 0, gid: 0, size }, remaining: size, padding, meta, metaChunks: [] }
        continue
      }
      const prefix = readString(header, 345, 155)
      const rawName = pax.path ?? longName ?? (prefix ? `${prefix}/${readString(header, 0, 100)}` : readString(header, 0, 100))
      const rawLink = pax.linkpath ?? longLink ?? readString(header, 157, 100)
      const mode = Number(readNumber(header, 100, 8)) & 0o7777
      const uid = Number(pax.uid ?? readNumber(header, 108, 8))
      const gid = Number(pax.gid ?? readNumber(header, 116, 8))
      pax = {}
      longName = undefined
      longLink = undefined
      const name = cleanName(rawName)
      const type = typeflag === '5' ? 'dir' : typeflag === '2' ? 'symlink' : typeflag === '1' ? 'hardlink' : typeflag === '0' || typeflag === '\0' || typeflag === '7' ? 'file' : undefined
      if (type === undefined || name === '') {
        // Devices, FIFOs and the archive root itself: nothing to place. Skip the body.
        current = { entry: { name, type: 'file', mode, uid, gid, size }, remaining: size, padding, meta: 'skip', metaChunks: [] }
        continue
      }
      const entry: TarEntry = { name, type, mode, uid, gid, size: type === 'file' ? size : 0 }
      if (type === 'symlink') entry.linkname = rawLink
      if (type === 'hardlink') entry.linkname = cleanName(rawLink)
      entries.push(entry)
      if (type === 'file') {
        entry.localPath = path.join(workDir, `member-${entries.length}`)
        current = { entry, remaining: size, padding, out: createWriteStream(entry.localPath, { mode: 0o600 }), hash: createHash('sha256') }
      } else {
        current = { entry, remaining: size, padding, meta: 'skip', metaChunks: [] }
      }
    }
  }
  if (current && current.remaining === 0 && buffer.length >= current.padding) await finishBody()
  if (current) throw new TarError('the tar stream ended inside a member')
  // Without its end-of-archive blocks a stream cut at a member boundary would look complete.
  if (!ended) throw new TarError('the tar stream ended without its end-of-archive marker (truncated)')
  // A hard link is another name for earlier bytes: give it the same local file and digest.
  for (const entry of entries) {
    if (entry.type !== 'hardlink') continue
    const target = entries.find((other) => other.name === entry.linkname && other.type === 'file')
    if (!target) throw new TarError(`hard link ${entry.name} points at ${entry.linkname}, which is not an earlier file of the archive`)
    entry.type = 'file'
    entry.size = target.size
    if (target.localPath !== undefined) entry.localPath = target.localPath
    if (target.sha256 !== undefined) entry.sha256 = target.sha256
    delete entry.linkname
  }
  return entries
}

/** `./a/b/` → `a/b`; absolute names and `..` are refused (they would land outside the destination). */
export function cleanName(raw: string): string {
  if (raw.startsWith('/')) throw new TarError(`archive member "${raw}" has an absolute name`)
  const normalized = path.posix.normalize(raw)
  if (normalized === '..' || normalized.startsWith('../') || normalized.split('/').includes('..')) {
    throw new TarError(`archive member "${raw}" points outside the destination ("..")`)
  }
  return normalized === '.' || normalized === './' ? '' : normalized.replace(/^\.\//, '').replace(/\/+$/, '')
}

function readString(block: Buffer, offset: number, length: number): string {
  const slice = block.subarray(offset, offset + length)
  const end = slice.indexOf(0)
  return slice.subarray(0, end === -1 ? length : end).toString('utf8')
}

function readNumber(block: Buffer, offset: number, length: number): number {
  const first = block[offset] ?? 0
  if (first & 0x80) {
    // GNU base-256 for large values.
    let value = 0
    for (let i = 1; i < length; i++) value = value * 256 + (block[offset + i] ?? 0)
    return value
  }
  const text = readString(block, offset, length).trim()
  return text === '' ? 0 : Number.parseInt(text, 8)
}

function parsePax(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  let rest = text
  while (rest.length > 0) {
    const space = rest.indexOf(' ')
    if (space === -1) break
    const length = Number(rest.slice(0, space))
    if (!Number.isFinite(length) || length <= 0) break
    const record = Buffer.from(rest).subarray(0, length).toString('utf8')
    const eq = record.indexOf('=')
    if (eq !== -1) out[record.slice(space + 1, eq)] = record.slice(eq + 1).replace(/\n$/, '')
    rest = Buffer.from(rest).subarray(length).toString('utf8')
  }
  return out
}
