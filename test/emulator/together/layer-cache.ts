// Layer reuse across builds, grouped by `cache_key` as the builder documents it: a build only sees the
// layers of builds that had the same cache key. Each entry is a copy of the root tree after a step, found by
// the chained key of every step up to it (copied through the root-fs operations, owners and all).
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import type { TogetherFs } from './rootfs/client.ts'

export class LayerCache {
  private readonly dir: string
  private readonly entries = new Map<string, string>()
  private readonly fs: TogetherFs

  constructor(dataDir: string, fs: TogetherFs) {
    this.dir = join(dataDir, 'layer-cache')
    this.fs = fs
  }

  private id(cacheKey: string, stepKey: string): string {
    return createHash('sha256').update(cacheKey).update('\0').update(stepKey).digest('hex')
  }

  /** The stored tree of that step, if a build with this cache key produced it. */
  get(cacheKey: string, stepKey: string): string | undefined {
    return this.entries.get(this.id(cacheKey, stepKey))
  }

  async put(cacheKey: string, stepKey: string, root: string): Promise<void> {
    const id = this.id(cacheKey, stepKey)
    if (this.entries.has(id)) return
    const dir = join(this.dir, id)
    await this.fs.call('copyTree', { from: root, to: dir })
    this.entries.set(id, dir)
  }
}

/** The next link of a step-key chain. */
export function chainKey(previous: string, ...parts: string[]): string {
  const hash = createHash('sha256').update(previous)
  for (const part of parts) hash.update('\0').update(part)
  return hash.digest('hex')
}
