/**
 * A build context as a streamed, reproducible tar.gz: entries sorted by path (directories before what
 * they hold), every owner 0:0 without names, every mtime 0, modes kept, PAX records for names, link
 * targets and sizes that ustar cannot hold. The same tree gives the same tar bytes on any checkout,
 * whatever the files' timestamps or owners. Nothing is held in memory beyond one chunk per file: the
 * archive is produced as it is sent, with backpressure from the consumer.
 *
 * Compression adapts to the link unless a fixed level is asked for: while the consumer (the upload)
 * waits on us, compressing costs more than it saves and the level steps down, to plain stored blocks;
 * while we wait on the consumer, the level steps up. With a fixed level the gzip bytes are
 * reproducible too; adaptively only the tar inside is (the level depends on timing).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { constants as zlibConstants, crc32, createDeflateRaw, type DeflateRaw, type ZlibParams } from 'node:zlib'
import type { ContextTree, TreeFile } from './context-tree.ts'

export interface ArchiveOptions {
  /** A zlib level 0–9 for byte-reproducible output; 'adaptive' (default) follows the link's speed. */
  compression?: 'adaptive' | number
  now?: () => number
}

/** The context file changed between listing and archiving: the archive would not be what was hashed. */
export class ContextChangedError extends Error {
  constructor(relPath: string, detail: string) {
    super(`build context: ${relPath} changed while it was being sent (${detail}); nothing consistent can be built from it`)
    this.name = 'ContextChangedError'
  }
}

const BLOCK = 512
/** Files up to this size are read in one synchronous call (no thread-pool round trips per small file). */
const SMALL_FILE_LIMIT = 256 * 1024
const READ_CHUNK = 1024 * 1024
/** Levels the adaptive mode moves between: stored, fastest, and two that still keep up with fast links. */
const LEVELS: readonly number[] = [0, 1, 3, 6]
const START_LEVEL_INDEX = 1
/** Archive bytes taken in between two decisions of the adaptive mode. */
const ADAPT_WINDOW_BYTES = 4 * 1024 * 1024

/**
 * Bytes of the tar stream of `tree` (uncompressed), as an async iterable. With `reuse`, file data
 * is read into one buffer that the next chunk overwrites: the consumer must be done with a chunk
 * before it asks for the next (memory then stays at one buffer however large the context).
 */
export async function* tarStream(tree: Pick<ContextTree, 'files' | 'dirs' | 'links'>, options: { reuse?: boolean } = {}): AsyncGenerator<Uint8Array> {
  const scratch = options.reuse ? Buffer.allocUnsafe(READ_CHUNK) : undefined
  for (const entry of mergeEntries(tree)) {
    if (entry.kind === 'dir') {
      yield header({ name: `${entry.relPath}/`, mode: entry.mode, size: 0, type: '5' })
    } else if (entry.kind === 'link') {
      yield header({ name: entry.relPath, mode: 0o777, size: 0, type: '2', linkname: entry.target })
    } else {
      yield header({ name: entry.file.relPath, mode: entry.file.mode, size: entry.file.size, type: '0' })
      yield* fileContent(entry.file, scratch)
      const pad = (BLOCK - (entry.file.size % BLOCK)) % BLOCK
      if (pad > 0) yield new Uint8Array(pad)
    }
  }
  yield new Uint8Array(2 * BLOCK)
}

/**
 * The gzip of {@link tarStream}; a fresh stream per call (a replayed upload calls it again). The gzip
 * framing (header, CRC-32, length) is written here around a raw deflate stream: zlib can change its
 * level mid-stream only in raw or zlib mode, not in gzip mode.
 */
export async function* contextArchive(tree: Pick<ContextTree, 'files' | 'dirs' | 'links'>, options: ArchiveOptions = {}): AsyncGenerator<Uint8Array> {
  const fixed = typeof options.compression === 'number' ? options.compression : undefined
  let levelIndex = START_LEVEL_INDEX
  let wantedLevel = fixed ?? levelAt(levelIndex)
  let appliedLevel = wantedLevel
  // Node's DeflateRaw has params() (deflateParams); the type definitions only list it for Deflate.
  const deflate = createDeflateRaw({ level: appliedLevel }) as DeflateRaw & ZlibParams
  let crc = 0
  let length = 0
  let stopped = false

  // Writes one tar chunk at a time; a level change is applied only between writes, after a flush,
  // so no write is ever in flight while the compressor's parameters change.
  const producer = (async () => {
    try {
      for await (const chunk of tarStream(tree, { reuse: true })) {
        if (stopped) return
        if (wantedLevel !== appliedLevel) {
          const level = wantedLevel
          await settled(deflate, (done) => deflate.params(level, zlibConstants.Z_DEFAULT_STRATEGY, done))
          appliedLevel = level
        }
        crc = crc32(chunk, crc)
        length += chunk.byteLength
        // Done with the chunk once the compressor has taken it in: the tar stream reuses its buffer.
        await settled(deflate, (done) => deflate.write(chunk, () => done()))
      }
      deflate.end()
    } catch (error) {
      deflate.destroy(error as Error)
    }
  })()

  const now = options.now ?? (() => performance.now())
  let waited = 0
  let worked = 0
  let decidedAt = 0
  let resumed = now()
  try {
    yield GZIP_HEADER
    for await (const chunk of deflate as AsyncIterable<Buffer>) {
      const ready = now()
      worked += ready - resumed
      yield chunk
      resumed = now()
      waited += resumed - ready
      if (fixed === undefined && length - decidedAt >= ADAPT_WINDOW_BYTES) {
        const waitingShare = waited / Math.max(1e-9, waited + worked)
        // Mostly waiting on the consumer: the link is the bottleneck, compress harder; mostly making
        // the consumer wait: we are, compress less.
        if (waitingShare > 0.5 && levelIndex < LEVELS.length - 1) levelIndex++
        else if (waitingShare < 0.2 && levelIndex > 0) levelIndex--
        wantedLevel = levelAt(levelIndex)
        waited = 0
        worked = 0
        decidedAt = length
      }
    }
    await producer
    const trailer = Buffer.alloc(8)
    trailer.writeUInt32LE(crc >>> 0, 0)
    trailer.writeUInt32LE(length % 2 ** 32, 4)
    yield trailer
  } finally {
    stopped = true
    deflate.destroy()
    await producer
  }
}

/** RFC 1952 member header: deflate, no name, mtime 0, no extra flags, OS unix: the same on every run. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03])

/** The decompressed length of an archive: what `tarStream` yields for this tree. */
export function tarSize(tree: Pick<ContextTree, 'files' | 'dirs' | 'links'>): number {
  let size = 2 * BLOCK
  for (const entry of mergeEntries(tree)) {
    if (entry.kind === 'dir') size += headerBlocks({ name: `${entry.relPath}/`, size: 0 }) * BLOCK
    else if (entry.kind === 'link') size += headerBlocks({ name: entry.relPath, size: 0, linkname: entry.target }) * BLOCK
    else size += headerBlocks({ name: entry.file.relPath, size: entry.file.size }) * BLOCK + Math.ceil(entry.file.size / BLOCK) * BLOCK
  }
  return size
}

type Entry = { kind: 'dir'; relPath: string; mode: number } | { kind: 'link'; relPath: string; target: string } | { kind: 'file'; relPath: string; file: TreeFile }

/** All entries in one path order (each list is sorted; the merge keeps a directory before its content). */
function mergeEntries(tree: Pick<ContextTree, 'files' | 'dirs' | 'links'>): Entry[] {
  const entries: Entry[] = [
    ...tree.dirs.map((dir): Entry => ({ kind: 'dir', relPath: dir.relPath, mode: dir.mode })),
    ...tree.links.map((link): Entry => ({ kind: 'link', relPath: link.relPath, target: link.target })),
    ...tree.files.map((file): Entry => ({ kind: 'file', relPath: file.relPath, file })),
  ]
  return entries.sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0))
}

/** A file's bytes, checked against the size listed; into `scratch` (reused) when given, else fresh buffers. */
async function* fileContent(file: TreeFile, scratch: Buffer | undefined): AsyncGenerator<Uint8Array> {
  if (file.content !== undefined) {
    yield file.content
    return
  }
  if (file.size <= SMALL_FILE_LIMIT) {
    yield readSmallFile(file, scratch)
    return
  }
  const handle = await open(file.absPath, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    let offset = 0
    while (offset < file.size) {
      const want = Math.min(READ_CHUNK, file.size - offset)
      const buffer = scratch ?? Buffer.allocUnsafe(want)
      const { bytesRead } = await handle.read(buffer, 0, want, offset)
      if (bytesRead === 0) throw new ContextChangedError(file.relPath, `it has ${offset} bytes, not ${file.size}`)
      offset += bytesRead
      yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead)
    }
    if ((await handle.stat()).size !== file.size) throw new ContextChangedError(file.relPath, 'its size changed')
  } finally {
    await handle.close()
  }
}

/** One synchronous read (microseconds for a small file): three syscalls instead of thread-pool hops. */
function readSmallFile(file: TreeFile, scratch: Buffer | undefined): Uint8Array {
  const fd = openSync(file.absPath, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    const size = fstatSync(fd).size
    if (size !== file.size) throw new ContextChangedError(file.relPath, `it has ${size} bytes, not ${file.size}`)
    const buffer = scratch ?? Buffer.allocUnsafe(size)
    let length = 0
    while (length < size) {
      const read = readSync(fd, buffer, length, size - length, length)
      if (read === 0) throw new ContextChangedError(file.relPath, `it has ${length} bytes, not ${file.size}`)
      length += read
    }
    return buffer.subarray(0, size)
  } finally {
    closeSync(fd)
  }
}

function levelAt(index: number): number {
  return LEVELS[Math.max(0, Math.min(index, LEVELS.length - 1))] ?? 1
}

/** Waits for `start`'s callback, or for the stream to close (a destroyed stream calls back nothing). */
function settled(stream: DeflateRaw, start: (done: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('close', done)
      resolve()
    }
    stream.once('close', done)
    start(done)
  })
}

// ── tar headers ────────────────────────────────────────────────────────────────────────────────

interface HeaderFields {
  name: string
  mode: number
  size: number
  type: '0' | '2' | '5'
  linkname?: string
}

const USTAR_NAME_BYTES = 100
const USTAR_LINK_BYTES = 100
/** 11 octal digits. */
const USTAR_MAX_SIZE = 0o77777777777

/** PAX records for what ustar cannot hold: long or non-ASCII names and link targets, sizes of 8 GiB+. */
function paxRecords(fields: { name: string; size: number; linkname?: string }): Array<[string, string]> {
  const records: Array<[string, string]> = []
  if (!fitsUstar(fields.name, USTAR_NAME_BYTES)) records.push(['path', fields.name])
  if (fields.linkname !== undefined && !fitsUstar(fields.linkname, USTAR_LINK_BYTES)) records.push(['linkpath', fields.linkname])
  if (fields.size > USTAR_MAX_SIZE) records.push(['size', String(fields.size)])
  return records
}

function fitsUstar(text: string, bytes: number): boolean {
  return text.length <= bytes && /^[\x20-\x7e]*$/.test(text)
}

function headerBlocks(fields: { name: string; size: number; linkname?: string }): number {
  const records = paxRecords(fields)
  if (records.length === 0) return 1
  return 2 + Math.ceil(paxBody(records).byteLength / BLOCK)
}

function header(fields: HeaderFields): Uint8Array {
  const records = paxRecords(fields)
  const main = ustarBlock({
    name: asciiPrefix(fields.name, USTAR_NAME_BYTES),
    mode: fields.mode,
    size: fields.size > USTAR_MAX_SIZE ? 0 : fields.size,
    type: fields.type,
    linkname: fields.linkname === undefined ? '' : asciiPrefix(fields.linkname, USTAR_LINK_BYTES),
  })
  if (records.length === 0) return main
  const body = paxBody(records)
  const paxHeader = ustarBlock({ name: 'PaxHeader', mode: 0o644, size: body.byteLength, type: 'x', linkname: '' })
  const padded = Buffer.alloc(Math.ceil(body.byteLength / BLOCK) * BLOCK)
  body.copy(padded)
  return Buffer.concat([paxHeader, padded, main])
}

/** `"<len> <key>=<value>\n"`, where len counts the whole record including its own digits. */
function paxBody(records: Array<[string, string]>): Buffer {
  const lines = records.map(([key, value]) => {
    const rest = ` ${key}=${value}\n`
    const restBytes = Buffer.byteLength(rest)
    let length = restBytes + String(restBytes).length
    if (String(length).length !== String(restBytes).length) length = restBytes + String(length).length
    return `${length}${rest}`
  })
  return Buffer.from(lines.join(''), 'utf8')
}

/** The ustar field for a name that a PAX record carries in full: an ASCII-only stand-in. */
function asciiPrefix(text: string, bytes: number): string {
  return text.replace(/[^\x20-\x7e]/g, '_').slice(0, bytes)
}

function ustarBlock(fields: { name: string; mode: number; size: number; type: string; linkname: string }): Buffer {
  const block = Buffer.alloc(BLOCK)
  block.write(fields.name, 0, USTAR_NAME_BYTES, 'ascii')
  writeOctal(block, 100, 8, fields.mode & 0o7777)
  writeOctal(block, 108, 8, 0) // uid
  writeOctal(block, 116, 8, 0) // gid
  writeOctal(block, 124, 12, fields.size)
  writeOctal(block, 136, 12, 0) // mtime
  block.write(fields.type, 156, 1, 'ascii')
  block.write(fields.linkname, 157, USTAR_LINK_BYTES, 'ascii')
  block.write('ustar\u000000', 257, 8, 'ascii')
  // uname and gname stay empty: owners are numeric and fixed.
  writeOctal(block, 329, 8, 0) // devmajor
  writeOctal(block, 337, 8, 0) // devminor
  block.fill(0x20, 148, 156) // the checksum counts its own field as spaces
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii')
  return block
}

function writeOctal(block: Buffer, offset: number, width: number, value: number): void {
  block.write(`${value.toString(8).padStart(width - 1, '0')}\u0000`, offset, width, 'ascii')
}
