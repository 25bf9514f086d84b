/**
 * Content digests for build-context files: streamed sha256 with bounded concurrency, memoised by
 * (device, inode, size, mtime, ctime) so a file copied twice in one build is read once. ctime cannot
 * be set from user space, so a content change always changes the memo key.
 */
import { createHash } from 'node:crypto'
import { closeSync, constants, fstatSync, openSync, readSync, type BigIntStats } from 'node:fs'
import { open } from 'node:fs/promises'
import { ARCHIVE_SNIFF_BYTES, looksLikeTarArchive } from './archive-sniff.ts'

export interface FileDigest {
  sha256: string
  size: number
  /** st_mode & 0o7777. */
  mode: number
  /** Content is a (possibly compressed) tar archive, which ADD would unpack. */
  archive: boolean
}

export interface FileHasher {
  /** Digest of a regular file; refuses (ELOOP) if the final path component is a symlink. */
  hash(absPath: string): Promise<FileDigest>
}

/** Files up to this size are read in one call; larger ones are streamed. */
const WHOLE_READ_LIMIT = 1024 * 1024
/** Files up to this size are read synchronously into a reused buffer. */
const SMALL_FILE_LIMIT = 256 * 1024
const STREAM_CHUNK = 1024 * 1024

export function createFileHasher(): FileHasher {
  const memo = new Map<string, Promise<FileDigest>>()
  // One reusable buffer for the small-file path: most context files fit, and no allocation per file.
  let scratch = Buffer.allocUnsafe(SMALL_FILE_LIMIT)
  return {
    async hash(absPath: string): Promise<FileDigest> {
      // O_NOFOLLOW: the caller has already vetted the path; never let the last component be swapped for a link.
      // Small files take a synchronous path: four syscalls and no thread-pool round trips, which is
      // what dominates hashing a context of thousands of small files. It blocks for microseconds.
      const fd = openSync(absPath, constants.O_RDONLY | constants.O_NOFOLLOW)
      let stat: BigIntStats
      try {
        stat = fstatSync(fd, { bigint: true })
        if (!stat.isFile()) throw new Error(`${absPath} is not a regular file`)
        const key = memoKey(stat)
        const known = memo.get(key)
        if (known) return await known
        const size = Number(stat.size)
        const mode = Number(stat.mode & 0o7777n)
        if (size <= SMALL_FILE_LIMIT) {
          if (scratch.length < size) scratch = Buffer.allocUnsafe(size)
          let length = 0
          while (length < size) {
            const read = readSync(fd, scratch, length, size - length, length)
            if (read === 0) break
            length += read
          }
          const data = scratch.subarray(0, length)
          const digest: FileDigest = {
            sha256: createHash('sha256').update(data).digest('hex'),
            size: length,
            mode,
            archive: looksLikeTarArchive(data.subarray(0, ARCHIVE_SNIFF_BYTES)),
          }
          memo.set(key, Promise.resolve(digest))
          return digest
        }
      } finally {
        closeSync(fd)
      }
      return hashLarge(absPath, stat, memo)
    },
  }
}

function memoKey(stat: BigIntStats): string {
  return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`
}

/** Large files are streamed off the event loop. */
async function hashLarge(absPath: string, stat: BigIntStats, memo: Map<string, Promise<FileDigest>>): Promise<FileDigest> {
  const key = memoKey(stat)
  const known = memo.get(key)
  if (known) return known
  const handle = await open(absPath, constants.O_RDONLY | constants.O_NOFOLLOW)
  const size = Number(stat.size)
  const mode = Number(stat.mode & 0o7777n)
  const pending = digestHandle(handle, size).then(({ sha256, archive }) => ({ sha256, size, mode, archive }))
  memo.set(key, pending)
  pending.catch(() => memo.delete(key))
  return pending
}

async function digestHandle(
  handle: import('node:fs/promises').FileHandle,
  size: number,
): Promise<{ sha256: string; archive: boolean }> {
  try {
    if (size <= WHOLE_READ_LIMIT) {
      const data = await handle.readFile()
      return {
        sha256: createHash('sha256').update(data).digest('hex'),
        archive: looksLikeTarArchive(data.subarray(0, ARCHIVE_SNIFF_BYTES)),
      }
    }
    const hash = createHash('sha256')
    let head: Buffer | undefined
    for await (const chunk of handle.createReadStream({ highWaterMark: STREAM_CHUNK, autoClose: false, start: 0 })) {
      const buffer = chunk as Buffer
      if (!head) head = buffer.subarray(0, ARCHIVE_SNIFF_BYTES)
      hash.update(buffer)
    }
    return { sha256: hash.digest('hex'), archive: looksLikeTarArchive(head ?? new Uint8Array()) }
  } finally {
    await handle.close()
  }
}

/** Shared by default so one build's repeated COPYs of the same files hash each file once. */
export const defaultFileHasher: FileHasher = createFileHasher()
