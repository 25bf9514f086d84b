/**
 * The action's side of the rebuild figure, in its own process (the provider prints its own lines
 * here, not into the bench's figures): a cold build of the context, three unchanged rebuilds, then a
 * rebuild after appending a line to one file. Prints one JSON line with the timings and cache hits.
 * Usage: node together-rebuild-client.ts <api url> <builder url> <token> <context dir> <file to change>
 */
import { appendFileSync } from 'node:fs'
import path from 'node:path'
import { RemoteWorkRegistry } from '../../src/cancel.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import type { ProviderContext } from '../../src/providers/types.ts'
import { TogetherProvider } from '../../src/providers/together/provider.ts'

const [apiUrl, builderUrl, token, context, changed] = process.argv.slice(2) as [string, string, string, string, string]
const provider = new TogetherProvider({
  settings: { apiUrl, builderUrl, token, keepAlive: false, architecture: 'amd64', cpu: 1, memoryBytes: 2 * 1024 ** 3, repository: 'bench/repo' },
  userAgent: 'bench',
  workspace: path.dirname(context),
})
const ctx: ProviderContext = { log: new RemoteLog({ write: () => undefined }), signal: new AbortController().signal, registry: new RemoteWorkRegistry(() => undefined), report: { operations: [], sections: [] }, debug: () => undefined }
const request = { kind: 'build' as const, dockerfile: path.join(context, 'Dockerfile'), context, buildArgs: {}, noCache: false }
const time = async () => {
  const started = performance.now()
  const image = await provider.prepareImage(request, ctx)
  return { ms: performance.now() - started, cacheHit: image.cacheHit }
}
const cold = await time()
const warm = [await time(), await time(), await time()]
appendFileSync(changed, 'one more line\n')
const oneFile = await time()
process.stdout.write(`${JSON.stringify({ cold, warm, oneFile })}\n`)
