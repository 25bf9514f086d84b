// The builder's table of builds and what GET /builds/{id} answers. The SDKs read only `image_ref`; the
// `status` (and `error`) fields are the emulator's own, so tests and clients can tell the states apart.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { BuildLog } from './build-log.ts'
import type { RunningCommand } from './run-in-root.ts'
import type { BuildState, BuildView } from './types.ts'

/** Why a build stopped before its end: a DELETE, or an injected `{"error"}` in its log stream. */
export type StopRequest = { kind: 'cancelled' } | { kind: 'failed'; message: string }

/** What a submitted build is asked to do, as the builder parsed its form. */
export interface NewBuild {
  imageName: string
  name: string
  tag: string
  cacheKey: string
  dockerfile: string
  buildArgs: Record<string, string>
  nydus: boolean
  /** The uploaded context (.tar.gz), removed when the build ends. */
  contextFile: string
}

export interface BuildRecord extends NewBuild {
  id: string
  state: BuildState
  /** Scratch space of the build (unpacked context, stage roots), removed when it ends. */
  workDir: string
  log: BuildLog
  imageRef: string | null
  error: string | null
  runsExecuted: number
  stepsCached: number
  stop: StopRequest | null
  /** Aborts registry pulls of this build. */
  abort: AbortController
  /** The RUN process now running, if any. */
  current: RunningCommand | null
  createdAt: string
}

export class BuildTable {
  private readonly byId = new Map<string, BuildRecord>()
  submitted = 0

  /** A new running build whose scratch directory is `<workRoot>/<id>`. */
  create(spec: NewBuild, workRoot: string): BuildRecord {
    // Kubernetes-job-like ids: not UUIDs, so a client cannot get away with assuming one.
    const id = `build-${randomBytes(5).toString('hex')}`
    const record: BuildRecord = {
      ...spec,
      id,
      workDir: join(workRoot, id),
      state: 'running',
      log: new BuildLog(),
      imageRef: null,
      error: null,
      runsExecuted: 0,
      stepsCached: 0,
      stop: null,
      abort: new AbortController(),
      current: null,
      createdAt: new Date().toISOString(),
    }
    this.byId.set(id, record)
    this.submitted += 1
    return record
  }

  get(id: string): BuildRecord | undefined {
    return this.byId.get(id)
  }

  all(): BuildRecord[] {
    return [...this.byId.values()]
  }

  /** Stops a running build (idempotent; a finished build stays as it is). */
  stop(build: BuildRecord, request: StopRequest): void {
    if (build.state !== 'running' || build.stop) return
    build.stop = request
    build.abort.abort(new Error(request.kind))
    build.current?.kill()
  }

  views(): BuildView[] {
    return this.all().map((build) => ({
      id: build.id,
      state: build.state,
      imageName: build.imageName,
      cacheKey: build.cacheKey,
      dockerfile: build.dockerfile,
      buildArgs: { ...build.buildArgs },
      nydus: build.nydus,
      imageRef: build.imageRef,
      error: build.error,
      log: [...build.log.lines],
      runsExecuted: build.runsExecuted,
      stepsCached: build.stepsCached,
    }))
  }
}

export function toWireBuild(build: BuildRecord): Record<string, unknown> {
  const wire: Record<string, unknown> = { build_id: build.id, status: build.state }
  // Only a finished build has an image; the SDKs treat a missing image_ref after `done` as an error.
  if (build.imageRef) wire.image_ref = build.imageRef
  if (build.error) wire.error = build.error
  return wire
}
