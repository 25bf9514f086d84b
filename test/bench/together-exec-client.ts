/**
 * The action's side of the exec-stream figure, in its own process: one run through the Together
 * provider, its group written to this process's stdout exactly as the action writes it. The sandbox
 * is kept so the yardstick can read the same exec's output afterwards. The last stdout line is
 * `RESULT {json}` with the run's outputs.
 * Usage: node together-exec-client.ts <api url> <builder url> <token> <snapshot id> <bytes>
 */
import os from 'node:os'
import { RemoteWorkRegistry } from '../../src/cancel.ts'
import { RemoteLog } from '../../src/output/remote-log.ts'
import { TogetherProvider } from '../../src/providers/together/provider.ts'

const [apiUrl, builderUrl, token, snapshotId, bytes] = process.argv.slice(2) as [string, string, string, string, string]
const LINE = 'streaming benchmark line 0123456789 abcdefghijklmnopqrstuvwxyz.'
const provider = new TogetherProvider({
  settings: { apiUrl, builderUrl, token, keepAlive: true, architecture: 'amd64', cpu: 1, memoryBytes: 2 * 1024 ** 3 },
  userAgent: 'bench',
  workspace: os.tmpdir(),
})
const log = new RemoteLog()
const outcome = await provider.run(
  { id: snapshotId, cacheHit: false, outputs: {} },
  { command: `yes '${LINE}' | head -c ${bytes}`, shell: true, env: {}, timeoutSeconds: 600, keepAlive: true, deadlineMs: 600_000 },
  { log, signal: new AbortController().signal, registry: new RemoteWorkRegistry(() => undefined), report: { operations: [], sections: [] }, debug: () => undefined },
)
process.stdout.write(`RESULT ${JSON.stringify({ exitCode: outcome.exitCode, ...outcome.outputs })}\n`)
