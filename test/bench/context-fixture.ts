/**
 * A build context shaped like a mid-sized repository: `dirs` directories of `filesPerDir` small files
 * (1–8 KiB, sizes from a fixed seed so every bench run hashes and uploads the same amount).
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export interface ContextFixture {
  /** The directory holding the context. */
  root: string
  files: number
  bytes: number
}

export function dirName(index: number): string {
  return `d${String(index).padStart(2, '0')}`
}

export function fileName(index: number): string {
  return `f${String(index).padStart(3, '0')}.txt`
}

/** Creates `root` (which must not exist yet) and fills it. */
export function makeContext(root: string, dirs = 50, filesPerDir = 100): ContextFixture {
  mkdirSync(root)
  let seed = 0x2545f491
  const nextSize = (): number => {
    // xorshift32: deterministic sizes without carrying a PRNG dependency.
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return 1024 + ((seed >>> 0) % (7 * 1024 + 1))
  }
  let bytes = 0
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(root, dirName(d))
    mkdirSync(dir)
    for (let f = 0; f < filesPerDir; f++) {
      const size = nextSize()
      // Base64 of random bytes: text-like, and no two files share content (no accidental dedupe).
      writeFileSync(path.join(dir, fileName(f)), randomBytes(size).toString('base64').slice(0, size))
      bytes += size
    }
  }
  return { root, files: dirs * filesPerDir, bytes }
}

export function benchTempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix))
}
