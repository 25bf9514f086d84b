/**
 * One Dockerfile build step as one ConTree spawn. The spawn runs the step helper as root with cwd
 * "/"; the helper applies the step's file operations in Dockerfile order (WORKDIR directories,
 * COPY/ADD entries with Docker's owners and modes, files of other stages, unpacked archives),
 * sets up the RUN's mounts, switches to the step's user and runs its command (see helper.c). The
 * files it needs are placed by the spawn's `files` map under a staging directory the helper removes.
 *
 * Names in USER and --chown are resolved here against the image's own /etc/passwd and /etc/group
 * (read once per image through the inspect route), so the image needs neither su nor setpriv.
 * Secrets travel as environment variables of this spawn only (named so the service redacts them in
 * its event stream), never as uploaded files; the helper writes them where the Dockerfile asked
 * and removes them before the step's image is taken.
 */
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import type { ContextTree } from '../../../dockerfile/context.ts'
import { formatMode } from './copy-plan.ts'
import type { BuildStep, CopyEntry, FsOp } from './plan.ts'
import type { FromSource } from '../../../dockerfile/stages.ts'
import { decompressed, extractTar, type TarEntry } from './tar-extract.ts'
import { needsUserDb, parseGroup, parsePasswd, resolveChown, resolveUser, ROOT, UserLookupError, type UserDb } from './users.ts'
import { DockerfileError } from '../../../dockerfile/dockerfile.ts'
import { containsWildcards } from '../../../dockerfile/context.ts'
import type { LocalFile } from '../../types.ts'
import type { ContreeServiceApi } from '../service-types.ts'
import { encodeOperations, HELPER_PATH, OPERATIONS_PATH, SECRET_ENV_PREFIX, STAGING_DIR, stepHelperBinary, type HelperOp, type Owner } from '../step-helper/operations.ts'

export interface StepContext {
  provider: ContreeServiceApi
  signal: AbortSignal
  fileName: string
  /** Stage index → the image its result is. */
  stageImages: ReadonlyMap<number, string>
  /** `COPY --from=<image>` reference → image id. */
  fromImages: ReadonlyMap<string, string>
  /** URL → its downloaded bytes on disk. */
  downloads: ReadonlyMap<string, LocalFile>
  secrets: Readonly<Record<string, string>>
  users: UserDbCache
  /** Resolves a bind mount's context source. */
  resolveTree: (sources: readonly string[]) => Promise<ContextTree>
  /** A scratch directory of this build (under RUNNER_TEMP) for the files a step places. */
  workDir: string
  /** COPY heredoc contents already on disk, by sha256 (see materializeInline). */
  inline: ReadonlyMap<string, LocalFile>
}

/** What to spawn: the files to place (sandbox path → local file) and the helper's invocation. */
export interface PreparedStep {
  placements: Record<string, { file: LocalFile; mode: string; uid: number; gid: number }>
  command: string
  args: string[]
  env: Record<string, string>
  network: boolean
}

/** /etc/passwd and /etc/group of each image, read once per build. */
export class UserDbCache {
  private readonly dbs = new Map<string, Promise<UserDb>>()
  private readonly provider: ContreeServiceApi
  private readonly signal: AbortSignal
  constructor(provider: ContreeServiceApi, signal: AbortSignal) {
    this.provider = provider
    this.signal = signal
  }
  get(image: string): Promise<UserDb> {
    let db = this.dbs.get(image)
    if (!db) {
      db = Promise.all([this.provider.readImageFile(image, '/etc/passwd', this.signal), this.provider.readImageFile(image, '/etc/group', this.signal)]).then(
        ([passwd, group]) => ({ passwd: parsePasswd(text(passwd)), group: parseGroup(text(group)) }),
      )
      this.dbs.set(image, db)
    }
    return db
  }
}

function text(bytes: Uint8Array | null): string {
  return bytes ? Buffer.from(bytes).toString('utf8') : ''
}

export async function prepareStep(ctx: StepContext, step: BuildStep, image: string): Promise<PreparedStep> {
  const fail = (line: number, message: string, cause?: unknown): never => {
    throw new DockerfileError(line, message, ctx.fileName, cause === undefined ? undefined : { cause })
  }
  const placements: PreparedStep['placements'] = {}
  const ops: HelperOp[] = []
  const env: Record<string, string> = { ...step.env }
  let staged = 0
  const stage = (file: LocalFile, mode: number): string => {
    const target = `${STAGING_DIR}/f${staged++}`
    placements[target] = { file, mode: formatMode(mode), uid: 0, gid: 0 }
    return target
  }

  const needsDb =
    needsUserDb(step.user, 'user') ||
    step.ops.some((op) => (op.kind === 'mkdir' ? needsUserDb(op.user, 'chown') : op.chown !== null && needsUserDb(op.chown, 'chown')))
  const db: UserDb = needsDb ? await ctx.users.get(image) : { passwd: [], group: [] }
  const lookup = <T>(line: number, what: string, work: () => T): T => {
    try {
      return work()
    } catch (error) {
      if (error instanceof UserLookupError) return fail(line, `${what}: ${error.message} of the image`, error)
      throw error
    }
  }

  for (const op of step.ops) await addOperation(op)

  for (const [index, mount] of step.mounts.entries()) {
    switch (mount.type) {
      case 'cache':
      case 'tmpfs':
        ops.push({ op: 'mount-dir', path: mount.target, mode: mount.mode, owner: { uid: mount.uid, gid: mount.gid } })
        break
      case 'secret': {
        const value = ctx.secrets[mount.id]
        if (value === undefined) {
          if (mount.required) fail(step.line, `RUN --mount=type=secret,id=${mount.id} is required, but the secrets input has no "${mount.id}"`)
          break
        }
        const variable = `${SECRET_ENV_PREFIX}${index}_SECRET`
        env[variable] = value
        if (mount.target !== null) ops.push({ op: 'secret-file', variable, path: mount.target, mode: mount.mode, owner: { uid: mount.uid, gid: mount.gid } })
        if (mount.env !== null) ops.push({ op: 'secret-env', variable, name: mount.env })
        break
      }
      case 'bind': {
        ops.push({ op: 'mount-tree', path: mount.target })
        if (mount.from.kind === 'context') {
          const tree = await ctx.resolveTree([mount.source])
          const lone = tree.dirs.length === 0 && tree.links.length === 0 && tree.files.length === 1 && tree.files[0]?.sourceKind === 'file'
          if (!lone) ops.push({ op: 'mkdirs', path: mount.target, mode: 0o755, owner: ROOT })
          for (const dir of tree.dirs) ops.push({ op: 'dir', path: path.posix.join(mount.target, dir.pathInSource), mode: dir.mode, owner: ROOT, parents: ROOT })
          for (const file of tree.files) {
            const target = lone ? mount.target : path.posix.join(mount.target, file.pathInSource)
            ops.push({ op: 'file', staged: stage(file, file.mode), path: target, mode: file.mode, owner: ROOT, parents: ROOT })
          }
          for (const link of tree.links) ops.push({ op: 'symlink', target: link.target, path: path.posix.join(mount.target, link.pathInSource), owner: ROOT, parents: ROOT })
        } else {
          if (mount.from.kind === 'stage-or-image') throw new Error(`internal: bind mount source ${mount.from.name} was not resolved`)
          const source: FromSource = mount.from
          const entries = await readFrom(step.line, source, path.posix.resolve('/', mount.source), mount.target, false, null, null)
          ops.push({ op: 'mkdirs', path: mount.target, mode: 0o755, owner: ROOT })
          for (const entry of entries) addEntry(entry.entry, entry.owner, ROOT)
        }
        break
      }
    }
  }
  for (const script of step.scripts) {
    ops.push({ op: 'mount-tree', path: script.path })
    ops.push({ op: 'file', staged: stage(await materialize(ctx.workDir, script.bytes, script.sha256), 0o755), path: script.path, mode: 0o755, owner: ROOT, parents: ROOT })
  }

  if (step.argv) {
    const user = lookup(step.line, `USER ${step.user}`, () => resolveUser(step.user, db))
    ops.push({ op: 'user', uid: user.uid, gid: user.gid, groups: user.groups })
    ops.push({ op: 'cwd', path: step.cwd })
    ops.push({ op: 'exec', argv: step.argv })
  }

  const helper = stepHelperBinary()
  placements[HELPER_PATH] = { file: await materialize(ctx.workDir, helper.bytes, helper.sha256), mode: '0700', uid: 0, gid: 0 }
  const operations = encodeOperations(ops)
  placements[OPERATIONS_PATH] = { file: await materialize(ctx.workDir, operations), mode: '0600', uid: 0, gid: 0 }
  return { placements, command: HELPER_PATH, args: [OPERATIONS_PATH], env, network: step.network !== 'none' }

  async function addOperation(op: FsOp): Promise<void> {
    switch (op.kind) {
      case 'mkdir': {
        // BuildKit creates a missing WORKDIR as a file operation owned by the USER in force, with the
        // file-operation rule for a user without a group (gid = uid), as COPY --chown does.
        const owner = op.user === '' ? ROOT : lookup(op.line, `WORKDIR ${op.path} (USER ${op.user})`, () => resolveChown(op.user, db))
        ops.push({ op: 'mkdirs', path: op.path, mode: 0o755, owner })
        return
      }
      case 'copy': {
        const owner = op.chown === null ? ROOT : lookup(op.line, `${op.keyword} --chown=${op.chown}`, () => resolveChown(op.chown as string, db))
        ops.push({ op: 'mkdirs', path: op.dest, mode: 0o755, owner })
        for (const entry of op.entries) {
          if (entry.content?.kind === 'url') {
            const download = ctx.downloads.get(entry.content.url)
            if (!download) throw new Error(`internal: ${entry.content.url} was not downloaded`)
            addEntry({ ...entry, content: { kind: 'context', file: { ...download, relPath: entry.content.url, mode: entry.mode, source: entry.content.url, sourceKind: 'file', pathInSource: '', archive: false } } }, owner, owner)
          } else addEntry(entry, owner, owner)
        }
        return
      }
      case 'copy-from': {
        const owner = op.chown === null ? null : lookup(op.line, `COPY --chown=${op.chown}`, () => resolveChown(op.chown as string, db))
        const multiple = op.paths.length > 1 || op.paths.some(containsWildcards)
        ops.push({ op: 'mkdirs', path: op.destIsDir || multiple ? op.dest : path.posix.dirname(op.dest), mode: 0o755, owner: owner ?? ROOT })
        for (const source of op.paths) {
          const entries = await readFrom(op.line, op.from, source, op.dest, op.destIsDir || multiple, owner, op.chmod)
          for (const entry of entries) addEntry(entry.entry, entry.owner, owner ?? ROOT)
        }
        return
      }
      case 'unpack': {
        const owner = op.chown === null ? null : lookup(op.line, `ADD --chown=${op.chown}`, () => resolveChown(op.chown as string, db))
        ops.push({ op: 'mkdirs', path: op.dest, mode: 0o755, owner: owner ?? ROOT })
        const dir = await mkdtemp(path.join(ctx.workDir, 'unpack-'))
        let members: TarEntry[]
        try {
          const bytes = await readFile(op.archive.absPath)
          members = await extractTar(decompressed(bytes.subarray(0, 8), Readable.from([bytes])), dir)
        } catch (error) {
          return fail(op.line, `ADD ${op.archive.relPath}: cannot unpack it: ${(error as Error).message}`, error)
        }
        for (const member of members) {
          const entry = memberEntry(member, path.posix.join(op.dest, member.name), op.chmod)
          if (entry) addEntry(entry, owner ?? { uid: member.uid, gid: member.gid }, owner ?? ROOT)
        }
        return
      }
    }
  }

  function addEntry(entry: CopyEntry, owner: Owner, parents: Owner): void {
    switch (entry.type) {
      case 'dir':
        ops.push({ op: 'dir', path: entry.path, mode: entry.mode, owner, parents })
        return
      case 'symlink':
        ops.push({ op: 'symlink', target: entry.target ?? '', path: entry.path, owner, parents })
        return
      case 'file': {
        const content = entry.content
        if (!content) throw new Error(`internal: ${entry.path} has no content`)
        const local = content.kind === 'context' ? content.file : placedInline(content)
        const placed: HelperOp = { op: 'file', staged: stage(local, entry.mode), path: entry.path, mode: entry.mode, owner, parents }
        if (entry.intoDirName !== undefined) placed.intoDirName = entry.intoDirName
        ops.push(placed)
      }
    }
  }

  function placedInline(content: NonNullable<CopyEntry['content']>): LocalFile {
    if (content.kind !== 'inline') throw new Error('internal: unexpected content')
    const local = ctx.inline.get(content.sha256)
    if (!local) throw new Error('internal: inline content was not written')
    return local
  }

  /** Files of a stage's result (or an image) at `source`, as entries below `dest`. */
  async function readFrom(
    line: number,
    from: FromSource,
    source: string,
    dest: string,
    destIsDir: boolean,
    owner: Owner | null,
    chmod: number | null,
  ): Promise<{ entry: CopyEntry; owner: Owner }[]> {
    const sourceImage = from.kind === 'stage' ? ctx.stageImages.get(from.index) : ctx.fromImages.get(from.ref)
    const label = from.kind === 'stage' ? `stage ${from.index}` : from.ref
    if (!sourceImage) throw new Error(`internal: no image for ${label}`)
    // A wildcard is matched inside the archive of the directory above its first wildcard segment.
    const segments = source.split('/').filter((part) => part !== '')
    const firstWild = segments.findIndex(containsWildcards)
    const root = firstWild === -1 ? source : `/${segments.slice(0, firstWild).join('/')}`
    const stream = await ctx.provider.readImageTree(sourceImage, root, ctx.signal)
    if (!stream) {
      if (firstWild !== -1) return []
      return fail(line, `COPY --from=${label}: ${source} does not exist in that image`)
    }
    const dir = await mkdtemp(path.join(ctx.workDir, 'from-'))
    const members = await extractTar(stream, dir)
    const rootName = root.replace(/^\/+/, '').replace(/\/+$/, '')
    const matchers = firstWild === -1 ? null : segments.map((segment) => segmentRegExp(segment))
    const out: { entry: CopyEntry; owner: Owner }[] = []
    // Each matched top entry: a file lands as the destination (or inside it); a directory's contents land below it.
    const tops = new Map<string, TarEntry>()
    for (const member of members) {
      if (matchers === null) {
        if (member.name === rootName) tops.set(member.name, member)
      } else {
        const parts = member.name.split('/')
        if (parts.length === matchers.length && matchers.every((m, i) => m.test(parts[i] ?? ''))) tops.set(member.name, member)
      }
    }
    if (tops.size === 0 && matchers === null) return fail(line, `COPY --from=${label}: ${source} does not exist in that image`)
    for (const [topName, top] of tops) {
      if (top.type === 'dir') {
        for (const member of members) {
          if (!member.name.startsWith(`${topName}/`)) continue
          const entry = memberEntry(member, path.posix.join(dest, member.name.slice(topName.length + 1)), chmod)
          if (entry) out.push({ entry, owner: owner ?? { uid: member.uid, gid: member.gid } })
        }
      } else {
        const name = path.posix.basename(topName)
        const target = destIsDir ? path.posix.join(dest, name) : dest
        const entry = memberEntry(top, target, chmod)
        if (entry && !destIsDir && entry.type === 'file') entry.intoDirName = name
        if (entry) out.push({ entry, owner: owner ?? { uid: top.uid, gid: top.gid } })
      }
    }
    return out
  }
}

/** A tar member as a copy entry at `target` (its bytes already on disk). */
function memberEntry(member: TarEntry, target: string, chmod: number | null): CopyEntry | undefined {
  const mode = chmod ?? member.mode
  if (member.type === 'dir') return { path: target, type: 'dir', mode }
  if (member.type === 'symlink') return { path: target, type: 'symlink', mode: 0o777, target: member.linkname ?? '' }
  if (member.type === 'file' && member.localPath && member.sha256) {
    const file = { relPath: member.name, absPath: member.localPath, size: member.size, mode: member.mode, sha256: member.sha256, source: member.name, sourceKind: 'file' as const, pathInSource: member.name, archive: false }
    return { path: target, type: 'file', mode, content: { kind: 'context', file } }
  }
  return undefined
}

/** Writes bytes the step places (helper, operations, heredocs) to the build's scratch dir, content-addressed. */
export async function materialize(workDir: string, bytes: Uint8Array, knownSha256?: string): Promise<LocalFile> {
  const sha256 = knownSha256 ?? createHash('sha256').update(bytes).digest('hex')
  const absPath = path.join(workDir, `blob-${sha256}`)
  await mkdir(workDir, { recursive: true })
  await writeFile(absPath, bytes, { mode: 0o600 })
  return { absPath, size: bytes.byteLength, sha256 }
}

/** Writes the heredoc files of every step before anything is uploaded (content sha256 → file). */
export async function materializeInline(workDir: string, steps: readonly BuildStep[], inlineFiles: Map<string, LocalFile>): Promise<void> {
  for (const step of steps) {
    for (const op of step.ops) {
      if (op.kind !== 'copy') continue
      for (const entry of op.entries) {
        if (entry.content?.kind === 'inline' && !inlineFiles.has(entry.content.sha256)) {
          inlineFiles.set(entry.content.sha256, await materialize(workDir, entry.content.bytes, entry.content.sha256))
        }
      }
    }
  }
}

function segmentRegExp(segment: string): RegExp {
  let out = '^'
  for (const ch of segment) out += ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : /[\\^$.+()[\]{}|/]/.test(ch) ? `\\${ch}` : ch
  return new RegExp(`${out}$`, 'su')
}
