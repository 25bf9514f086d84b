// Unpacks a build context (tar, gzip'ed) the way a careful builder does: streaming, checksums checked, and
// refusing absolute names, `..` components, device nodes, and writing through a symlink the archive made.
// Understands ustar, pax (path/linkpath/size) and GNU long names, which is what Python's tarfile, node-tar
// and GNU tar write.
import { once } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { chmod, link, lstat, mkdir, symlink, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { createGunzip } from 'node:zlib'

export class ContextError extends Error {}

export interface ExtractSummary {
  files: number
  bytes: number
}

const BLOCK = 512

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteReader {
  private readonly iterator: AsyncIterator<Buffer>
  private pending: Buffer = Buffer.alloc(0)
  private ended = false

  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]()
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false
    const next = await this.iterator.next()
    if (next.done) {
      this.ended = true
      return false
    }
    this.pending = this.pending.length === 0 ? next.value : Buffer.concat([this.pending, next.value])
    return true
  }

  /** Exactly n bytes, or null at a clean end of input (before any of them). */
  async read(n: number): Promise<Buffer | null> {
    while (this.pending.length < n) {
      if (!(await this.fill())) {
        if (this.pending.length === 0) return null
        throw new ContextError('context archive is truncated')
      }
    }
    const out = this.pending.subarray(0, n)
    this.pending = this.pending.subarray(n)
    return out
  }

  /** Passes n bytes to `sink` as they arrive. */
  async forward(n: number, sink: (chunk: Buffer) => Promise<void>): Promise<void> {
    let left = n
    while (left > 0) {
      if (this.pending.length === 0 && !(await this.fill())) throw new ContextError('context archive is truncated')
      const take = Math.min(left, this.pending.length)
      await sink(this.pending.subarray(0, take))
      this.pending = this.pending.subarray(take)
      left -= take
    }
  }

  async skip(n: number): Promise<void> {
    await this.forward(n, async () => undefined)
  }
}

function text(block: Buffer, offset: number, size: number): string {
  const field = block.subarray(offset, offset + size)
  const nul = field.indexOf(0)
  return field.subarray(0, nul < 0 ? size : nul).toString('utf8')
}

function numeric(block: Buffer, offset: number, size: number): number {
  const field = block.subarray(offset, offset + size)
  // GNU base-256 for values that do not fit in octal.
  if ((field[0] as number) & 0x80) {
    let value = (field[0] as number) & 0x7f
    for (let i = 1; i < size; i++) value = value * 256 + (field[i] as number)
    return value
  }
  const digits = text(block, offset, size).trim()
  if (digits === '') return 0
  if (!/^[0-7]+$/.test(digits)) throw new ContextError('context archive has a malformed header')
  return Number.parseInt(digits, 8)
}

function checksumOk(block: Buffer): boolean {
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number)
  return sum === numeric(block, 148, 8)
}

function paxRecords(body: Buffer): Map<string, string> {
  const records = new Map<string, string>()
  let offset = 0
  while (offset < body.length) {
    const space = body.indexOf(0x20, offset)
    if (space < 0) break
    const length = Number.parseInt(body.subarray(offset, space).toString('latin1'), 10)
    if (!Number.isInteger(length) || length <= 0) throw new ContextError('context archive has a malformed pax header')
    const record = body.subarray(space + 1, offset + length - 1).toString('utf8')
    const eq = record.indexOf('=')
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1))
    offset += length
  }
  return records
}

/** The entry's path relative to the context root, or a refusal. Empty for the root itself. */
export function safeEntryPath(name: string): string {
  if (name.startsWith('/')) throw new ContextError(`context archive entry has an absolute path: ${name}`)
  const parts = name.split('/').filter((part) => part !== '' && part !== '.')
  if (parts.includes('..')) throw new ContextError(`context archive entry escapes the context: ${name}`)
  return parts.join('/')
}

/** Creates the parents of `relative` under `dir`; a parent that exists must be a real directory. */
async function ensureParents(dir: string, relative: string): Promise<void> {
  const parts = relative.split('/').slice(0, -1)
  let current = dir
  for (const part of parts) {
    current = join(current, part)
    let stat
    try {
      stat = await lstat(current)
    } catch {
      await mkdir(current, { mode: 0o755 })
      continue
    }
    if (stat.isSymbolicLink()) throw new ContextError(`context archive writes through a symlink: ${relative}`)
    if (!stat.isDirectory()) throw new ContextError(`context archive entry is below a non-directory: ${relative}`)
  }
}

async function removeExisting(path: string, keepDirectory: boolean): Promise<void> {
  try {
    const stat = await lstat(path)
    if (stat.isDirectory()) {
      if (keepDirectory) return
      throw new ContextError(`context archive replaces a directory with a file: ${path}`)
    }
    await unlink(path)
  } catch (error) {
    if (error instanceof ContextError) throw error
  }
}

/** Unpacks `archive` (a .tar.gz file) into the existing empty directory `dir`. */
export async function extractContext(archive: string, dir: string): Promise<ExtractSummary> {
  const gunzip = createGunzip()
  const source = createReadStream(archive).pipe(gunzip)
  const failed = new Promise<never>((_, reject) =>
    gunzip.on('error', (error) => reject(new ContextError(`context is not a valid gzip stream: ${error.message}`))),
  )
  failed.catch(() => undefined)
  const work = readEntries(new ByteReader(source), dir)
  try {
    return await Promise.race([work, failed])
  } finally {
    source.destroy()
  }
}

async function readEntries(reader: ByteReader, dir: string): Promise<ExtractSummary> {
  const summary: ExtractSummary = { files: 0, bytes: 0 }
  let longName: string | null = null
  let longLink: string | null = null
  let pax = new Map<string, string>()
  for (;;) {
    const block = await reader.read(BLOCK)
    if (block === null) throw new ContextError('context archive ends without its end-of-archive blocks')
    if (block.every((byte) => byte === 0)) return summary
    if (!checksumOk(block)) throw new ContextError('context archive has a header with a bad checksum')
    const type = String.fromCharCode(block[156] as number)
    let size = numeric(block, 124, 12)
    const padded = Math.ceil(size / BLOCK) * BLOCK

    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      const body = (await reader.read(padded)) ?? Buffer.alloc(0)
      const content = body.subarray(0, size)
      if (type === 'x') pax = paxRecords(content)
      if (type === 'L') longName = text(content, 0, content.length)
      if (type === 'K') longLink = text(content, 0, content.length)
      continue
    }

    const prefix = block.subarray(257, 262).toString('latin1') === 'ustar' ? text(block, 345, 155) : ''
    const headerName = prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100)
    const name = pax.get('path') ?? longName ?? headerName
    const linkName = pax.get('linkpath') ?? longLink ?? text(block, 157, 100)
    if (pax.has('size')) size = Number(pax.get('size'))
    const dataBlocks = Math.ceil(size / BLOCK) * BLOCK
    pax = new Map()
    longName = null
    longLink = null
    const mode = numeric(block, 100, 8) & 0o7777

    const relative = safeEntryPath(name)
    if (relative === '') {
      await reader.skip(dataBlocks)
      continue
    }
    const target = join(dir, relative)
    await ensureParents(dir, relative)

    switch (type) {
      case '0':
      case '\0':
      case '7': {
        await removeExisting(target, false)
        const out = createWriteStream(target, { flags: 'wx', mode: 0o600 })
        await once(out, 'open')
        await reader.forward(size, async (chunk) => {
          if (!out.write(chunk)) await once(out, 'drain')
        })
        await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())))
        await chmod(target, mode & 0o777)
        await reader.skip(dataBlocks - size)
        summary.files += 1
        summary.bytes += size
        break
      }
      case '5':
        await removeExisting(target, true)
        await mkdir(target, { recursive: true, mode: 0o755 })
        await chmod(target, (mode & 0o777) | 0o700)
        await reader.skip(dataBlocks)
        break
      case '2':
        await removeExisting(target, false)
        await symlink(linkName, target)
        await reader.skip(dataBlocks)
        summary.files += 1
        break
      case '1': {
        const source = join(dir, safeEntryPath(linkName))
        await removeExisting(target, false)
        try {
          await link(source, target)
        } catch {
          throw new ContextError(`context archive hardlink to a missing entry: ${name} -> ${linkName}`)
        }
        await reader.skip(dataBlocks)
        summary.files += 1
        break
      }
      default:
        throw new ContextError(`context archive entry ${name} has an unsupported type ${JSON.stringify(type)}`)
    }
  }
}
