// The remote image builder (protocol §1.2–1.4; no OpenAPI document exists, the SDK clients are the source):
// multipart submit, the SSE log stream, the status JSON and DELETE.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { join, posix } from 'node:path'
import type { App } from './app.ts'
import { runBuild } from './build-runner.ts'
import type { BuildRecord } from './builds.ts'
import { toWireBuild } from './builds.ts'
import { drain, HttpError } from './http-io.ts'
import { checkCacheKey, parseImageName } from './image-ref.ts'
import { boundaryOf, MultipartError, parseMultipart, type PartSink } from './multipart.ts'
import type { Route, RouteContext } from './routing.ts'
import { idleUntil, SseWriter } from './sse-writer.ts'
import type { RecordedRequest } from './types.ts'

const FIELDS = ['image_name', 'dockerfile', 'build_args', 'nydus_convert', 'cache_key', 'context'] as const
const MAX_FIELD_BYTES = 64 * 1024

async function* counted(req: IncomingMessage, record: RecordedRequest): AsyncGenerator<Buffer> {
  for await (const chunk of req) {
    record.bodyBytes += (chunk as Buffer).length
    yield chunk as Buffer
  }
}

const discard: PartSink = { write: () => undefined, end: () => undefined }

/** The form fields (as text) and whether the context part arrived; the context itself is in `contextFile`. */
async function receiveForm(ctx: RouteContext<App>, contextFile: string): Promise<Map<string, string>> {
  const boundary = boundaryOf(ctx.req.headers['content-type'])
  if (!boundary) {
    await drain(ctx.req)
    throw new HttpError(400, 'Content-Type must be multipart/form-data with a boundary')
  }
  const fields = new Map<string, string>()
  let problem: string | null = null
  let sawContext = false
  try {
    await parseMultipart(counted(ctx.req, ctx.record), boundary, (part) => {
      if (!(FIELDS as readonly string[]).includes(part.name)) {
        problem ??= `unknown form field "${part.name}"`
        return discard
      }
      if (part.name === 'context') {
        if (sawContext) problem ??= 'the "context" part is given twice'
        if (part.filename === null) problem ??= 'the "context" part must be a file (filename context.tar.gz)'
        if (sawContext || part.filename === null) return discard
        sawContext = true
        const out = createWriteStream(contextFile)
        return {
          async write(chunk) {
            if (!out.write(chunk)) await once(out, 'drain')
          },
          end: () => new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve()))),
        }
      }
      if (fields.has(part.name)) problem ??= `the "${part.name}" field is given twice`
      if (part.filename !== null) problem ??= `"${part.name}" must be a plain form field, not a file`
      const chunks: Buffer[] = []
      let size = 0
      return {
        write(chunk) {
          size += chunk.length
          if (size > MAX_FIELD_BYTES) problem ??= `the "${part.name}" field is larger than ${MAX_FIELD_BYTES} bytes`
          else chunks.push(Buffer.from(chunk))
        },
        end() {
          if (!fields.has(part.name)) fields.set(part.name, Buffer.concat(chunks).toString('utf8'))
        },
      }
    })
  } catch (error) {
    if (error instanceof MultipartError) throw new HttpError(400, `malformed multipart body: ${error.message}`)
    throw error
  }
  if (problem) throw new HttpError(400, problem)
  if (!sawContext) throw new HttpError(400, 'the "context" file part is required')
  return fields
}

function parseBuildArgs(text: string | undefined): Record<string, string> {
  if (text === undefined) return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new HttpError(400, 'build_args must be a JSON object of strings')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((item) => typeof item !== 'string')) {
    throw new HttpError(400, 'build_args must be a JSON object of strings')
  }
  return value as Record<string, string>
}

function parseDockerfilePath(text: string | undefined): string {
  if (text === undefined) return 'Dockerfile'
  const normal = posix.normalize(text)
  if (text === '' || posix.isAbsolute(text) || normal === '..' || normal.startsWith('../') || normal === '.') {
    throw new HttpError(400, `dockerfile must be a file path relative to the context root, got ${JSON.stringify(text)}`)
  }
  return normal
}

const submitBuild = async (ctx: RouteContext<App>) => {
  const { app } = ctx
  const uploads = join(app.dataDir, 'uploads')
  await mkdir(uploads, { recursive: true })
  const contextFile = join(uploads, `${randomUUID()}.tar.gz`)
  try {
    const fields = await receiveForm(ctx, contextFile)
    const imageName = fields.get('image_name')
    if (imageName === undefined || imageName === '') throw new HttpError(400, 'image_name is required')
    const parsedName = parseImageName(imageName)
    if (typeof parsedName === 'string') throw new HttpError(400, parsedName)
    const nydus = fields.get('nydus_convert') ?? 'true'
    if (nydus !== 'true' && nydus !== 'false') throw new HttpError(400, 'nydus_convert must be "true" or "false"')
    const cacheKey = fields.get('cache_key')
    if (cacheKey !== undefined) {
      const problem = checkCacheKey(cacheKey)
      if (problem) throw new HttpError(400, problem)
    }
    const build = app.builds.create(
      {
        imageName,
        name: parsedName.name,
        tag: parsedName.tag,
        // Documented default: the image name without its tag.
        cacheKey: cacheKey ?? parsedName.name,
        dockerfile: parseDockerfilePath(fields.get('dockerfile')),
        buildArgs: parseBuildArgs(fields.get('build_args')),
        nydus: nydus === 'true',
        contextFile,
      },
      join(app.dataDir, 'builds'),
    )
    app.track(runBuild(app, build))
    return { status: 202, body: { build_id: build.id } }
  } catch (error) {
    await rm(contextFile, { force: true })
    throw error
  }
}

function buildOr404(app: App, id: string): BuildRecord {
  const build = app.builds.get(id)
  if (!build) throw new HttpError(404, `build ${id} not found`)
  return build
}

/**
 * Every connect replays the log from its first line: the SDKs reconnect without any cursor and no event
 * carries an id, so there is nothing to resume from. Lines, then the control event, then the end.
 */
const streamLogs = async (ctx: RouteContext<App>) => {
  const { app } = ctx
  const build = buildOr404(app, ctx.params[0] as string)
  const writer = new SseWriter(ctx.res, ctx.gzip)
  const fault = ctx.streamFault
  const limit = fault && 'afterEvents' in fault ? fault.afterEvents : Infinity
  let index = 0
  let sent = 0

  const nextFrame = async (): Promise<string | null> => {
    for (;;) {
      if (index < build.log.lines.length) return `data: ${build.log.lines[index]}\n\n`
      if (build.log.terminal) return `data: ${JSON.stringify(build.log.terminal)}\n\n`
      if (!(await idleUntil(writer, build.log.changed(), app.options.keepaliveMs))) return null
    }
  }

  const fire = async (): Promise<void> => {
    if (fault?.kind === 'cut-stream') {
      const frame = await nextFrame()
      if (frame === null) return
      await writer.write(frame.slice(0, Math.max(7, Math.floor(frame.length / 2))))
      return writer.cut()
    }
    if (fault?.kind === 'error-event') {
      const message = fault.message ?? 'injected build failure'
      app.builds.stop(build, { kind: 'failed', message })
      await writer.event(JSON.stringify({ error: message }))
    }
    return writer.end()
  }

  for (;;) {
    if (writer.closed) return
    if (sent >= limit) return fire()
    if (index < build.log.lines.length) {
      await writer.event(build.log.lines[index] as string)
      index += 1
      sent += 1
      continue
    }
    if (build.log.terminal) {
      await writer.event(JSON.stringify(build.log.terminal))
      return writer.end()
    }
    if (!(await idleUntil(writer, build.log.changed(), app.options.keepaliveMs))) return
  }
}

export const BUILDER_ROUTES: ReadonlyArray<Route<App>> = [
  { method: 'POST', pattern: /^\/builds$/, handler: submitBuild },
  { method: 'GET', pattern: /^\/builds\/([^/]+)\/logs$/, handler: streamLogs, stream: 'build-log' },
  {
    method: 'GET',
    pattern: /^\/builds\/([^/]+)$/,
    handler: (ctx) => ({ status: 200, body: toWireBuild(buildOr404(ctx.app, ctx.params[0] as string)) }),
  },
  {
    method: 'DELETE',
    pattern: /^\/builds\/([^/]+)$/,
    handler: (ctx) => {
      ctx.app.builds.stop(buildOr404(ctx.app, ctx.params[0] as string), { kind: 'cancelled' })
      return { status: 204 }
    },
  },
]
