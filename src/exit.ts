/**
 * Ends the process only after stdout and stderr have been handed to the OS. When the reader of a
 * pipe is slower than the action, Node queues writes in memory, and process.exit() would drop them:
 * the end of the log, the endgroup and the final error would be lost.
 */
import { closeLogsForExit } from './output/remote-log.ts'

const FLUSH_TIMEOUT_MS = 5000

function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) return resolve()
    stream.write('', () => resolve())
  })
}

export async function exitAfterFlush(code?: number): Promise<never> {
  // An open window is closed (and what waited for it printed), and remote output waiting up to one
  // turn of the event loop to be written in blocks is written now.
  closeLogsForExit()
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, FLUSH_TIMEOUT_MS).unref())
  await Promise.race([Promise.all([flushed(process.stdout), flushed(process.stderr)]), timeout])
  // process.exit(undefined) exits 0 on Node 24; only a missing argument keeps process.exitCode.
  return code === undefined ? process.exit() : process.exit(code)
}
