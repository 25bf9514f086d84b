/**
 * Recognises the local files that Docker's ADD would unpack instead of copying: tar archives, plain
 * or compressed. Docker decides by content, not by name, so this looks at the first bytes.
 */
import { constants, gunzipSync } from 'node:zlib'

/** How many leading bytes the sniffer wants to see. */
export const ARCHIVE_SNIFF_BYTES = 64 * 1024

const TAR_BLOCK = 512

export function looksLikeTarArchive(head: Uint8Array): boolean {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return isTarHeader(gunzipPrefix(head))
  // bzip2, xz and zstd cannot be decompressed here; Docker would unpack them if they hold a tar, so
  // treat them as archives and let the caller refuse clearly rather than copy something different.
  if (startsWith(head, [0x42, 0x5a, 0x68])) return true
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return true
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return true
  return isTarHeader(head)
}

function gunzipPrefix(head: Uint8Array): Uint8Array {
  try {
    // A sync flush lets a truncated stream yield what it has instead of failing at the cut.
    return gunzipSync(head, { finishFlush: constants.Z_SYNC_FLUSH })
  } catch {
    return new Uint8Array()
  }
}

/** A tar header block: "ustar" magic, or (old v7 archives) a valid header checksum. */
function isTarHeader(block: Uint8Array): boolean {
  if (block.length < TAR_BLOCK || block[0] === 0) return false
  const magic = String.fromCharCode(...block.subarray(257, 262))
  if (magic === 'ustar') return true
  const stored = Number.parseInt(String.fromCharCode(...block.subarray(148, 156)).replace(/[\0 ]+$/, '').trim(), 8)
  if (!Number.isFinite(stored)) return false
  let sum = 0
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0)
  return sum === stored
}

function startsWith(head: Uint8Array, bytes: number[]): boolean {
  return bytes.every((byte, i) => head[i] === byte)
}
