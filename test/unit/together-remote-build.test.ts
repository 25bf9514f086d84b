/**
 * One remote build's life around its log: a signal during the upload stops the upload (no build can
 * exist from an incomplete form); a build the action loses (unreadable log, deadline) is deleted at
 * once and reported with its id; a signal after the build exists only stops waiting.
 */
import { describe, expect, it } from 'vitest'
import { RemoteWorkRegistry } from '../../src/cancel.ts'
import { HttpError } from '../../src/http/errors.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import type { ProviderContext } from '../../src/providers/types.ts'
import type { HttpResponse } from '../../src/http/client.ts'
import { dockerfileOnlyTree } from '../../src/providers/together/context-tree.ts'
import { runRemoteBuild, type RemoteBuildRequest } from '../../src/providers/together/remote-build.ts'
import type { TogetherBuilder } from '../../src/providers/together/builder.ts'
import { OperationInterruptedError } from '../../src/providers/types.ts'

type FakeBuilder = Pick<TogetherBuilder, 'submit' | 'openLogs' | 'status' | 'cancel' | 'baseUrl'>

function harness(builder: Partial<FakeBuilder>) {
  const controller = new AbortController()
  const registry = new RemoteWorkRegistry(() => undefined)
  const deleted: string[] = []
  const fake: FakeBuilder = {
    baseUrl: 'http://builder',
    submit: async () => 'b-1',
    openLogs: async () => {
      throw new Error('not scripted')
    },
    status: async () => ({ image_ref: 'r/ns/x:y' }),
    cancel: async (id) => {
      deleted.push(id)
      return 'cancelled'
    },
    ...builder,
  }
  const ctx: ProviderContext = { log: new RemoteLog({ write: () => undefined }), signal: controller.signal, registry, report: { operations: [], sections: [] }, debug: () => undefined }
  const request: RemoteBuildRequest = { tree: dockerfileOnlyTree('FROM busybox\n'), buildArgs: {}, title: 'Build', label: 'build Dockerfile', deadlineMs: 60_000 }
  return { controller, registry, deleted, ctx, request, run: () => runRemoteBuild(fake, request, ctx, { cancelTimeoutMs: 1000, sleep: async () => undefined }) }
}

function sseBody(...events: string[]): HttpResponse {
  const text = events.map((data) => `data: ${data}\n\n`).join('')
  return { status: 200, headers: {}, body: (async function* () { yield Buffer.from(text) })(), json: async () => ({}) as never, text: async () => text, bytes: async () => Buffer.from(text), dump: async () => undefined }
}

describe('remote build', () => {
  it('stops the upload at the first chunk after a signal, and no build is registered', async () => {
    let sentAfterAbort = 0
    const h = harness({
      submit: async (submission) => {
        for await (const _chunk of submission.context()) {
          if (h.controller.signal.aborted) sentAfterAbort++
          h.controller.abort(new Error('cancelled by SIGINT'))
        }
        return 'never'
      },
    })
    await expect(h.run()).rejects.toThrow('cancelled by SIGINT')
    expect(sentAfterAbort).toBe(0)
    expect(h.registry.all()).toEqual([])
  })

  it('registers the build the moment its id exists and finishes it with its image', async () => {
    const h = harness({ openLogs: async () => sseBody('#1 step', '{"done":true}') })
    expect(await h.run()).toMatchObject({ buildId: 'b-1', imageRef: 'r/ns/x:y' })
    expect(h.registry.all()).toMatchObject([{ provider: 'together', kind: 'build', id: 'b-1', endpoint: 'http://builder', state: 'done' }])
  })

  it('deletes a build whose log cannot be read, and says so with its id', async () => {
    const h = harness({
      openLogs: async () => {
        throw new HttpError({ status: 403, method: 'GET', url: 'http://builder/builds/b-1/logs' })
      },
    })
    const error = await h.run().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OperationInterruptedError)
    expect((error as Error).message).toMatch(/^build Dockerfile: lost track of build b-1: .*HTTP 403.*; it was cancelled$/)
    expect(h.deleted).toEqual(['b-1'])
    expect(h.registry.live()).toEqual([])
  })

  it('deletes a build that outlives its deadline', async () => {
    const h = harness({ openLogs: async () => sseBody('#1 still going') })
    h.request.deadlineMs = 50
    const error = await h.run().catch((e: unknown) => e)
    expect((error as Error).message).toMatch(/did not finish within 50 ms; it was cancelled/)
    expect(h.deleted).toEqual(['b-1'])
  })

  it('leaves a build to the job\'s cancellation once it exists: it only stops waiting', async () => {
    const h = harness({
      openLogs: async () => {
        h.controller.abort(new Error('cancelled by SIGTERM'))
        throw new Error('aborted')
      },
    })
    await expect(h.run()).rejects.toThrow('cancelled by SIGTERM')
    expect(h.deleted).toEqual([])
    expect(h.registry.live().map((w) => w.id)).toEqual(['b-1'])
  })
})
