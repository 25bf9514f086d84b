// Whole directory trees: images, layer-cache entries and sandbox roots are separate copies, so changing one
// never changes another.
import { execFile } from 'node:child_process'
import { mkdir, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Copies a tree (modes, owners, links; never hardlinks into the source); `to` must not exist. */
export async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true })
  await run('cp', ['-a', '--reflink=auto', from, to])
}

export async function removeTree(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

/** Apparent size of a tree in bytes (what `byte_size` reports). */
export async function treeSize(dir: string): Promise<number> {
  try {
    const { stdout } = await run('du', ['-sb', dir])
    return Number.parseInt(stdout, 10) || 0
  } catch {
    return 0
  }
}
