/**
 * Runs the replay server in a process of its own (`node test/bench/replay-process.ts <token>`), so
 * that neither the action nor the raw read shares a CPU-bound event loop with it. Prints
 * `REPLAY_URL=<url>` once listening; ends when its stdin closes (the bench went away) or on SIGTERM.
 */
import { startReplayServer } from './replay-server.ts'

const token = process.argv[2]
if (token === undefined || token === '') {
  process.stderr.write('usage: replay-process.ts <token>\n')
  process.exit(2)
}
const { url, server } = await startReplayServer(token)
process.stdout.write(`REPLAY_URL=${url}\n`)
const stop = (): void => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
}
process.stdin.on('end', stop).on('error', stop).resume()
process.on('SIGTERM', stop)
