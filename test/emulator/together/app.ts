// The state every route handler shares: stores, tables, the command runner and the resolved options.
import type { BuildTable } from './builds.ts'
import type { ImageStore } from './image-store.ts'
import type { LayerCache } from './layer-cache.ts'
import type { TogetherFs } from './rootfs/client.ts'
import type { RootRunner } from './run-in-root.ts'
import type { SandboxTable } from './sandboxes.ts'
import type { SnapshotTable } from './snapshots.ts'

export interface ResolvedOptions {
  apiKey: string
  projectId: string
  startDelayMs: number
  terminateDelayMs: number
  waitTimeoutMs: number
  keepaliveMs: number
  gzip: boolean
  defaultExecUser: string
  workspaceDir: string
  registryHost: string
}

export interface App {
  options: ResolvedOptions
  dataDir: string
  images: ImageStore
  /** Filesystem operations on trees with real owners (images, stages, sandbox roots, the agent's files). */
  fs: TogetherFs
  runner: RootRunner
  cache: LayerCache
  builds: BuildTable
  snapshots: SnapshotTable
  sandboxes: SandboxTable
  counters: { runStepsExecuted: number; stepsCached: number }
  /** `registry/namespace` of the image refs the builder produces. */
  repositoryPrefix: string
  /** Keeps background work (builds, sandbox lifecycles) so close() can wait for it. */
  track(task: Promise<unknown>): void
}
