/**
 * The raw read in a process of its own, like the action: `node raw-read-process.ts <url> <token>
 * <operation>` prints one JSON line (RawRead plus the CPU it used). Timing starts at the request, so
 * Node's own start-up is not counted, as it is not for the action either.
 */
import { readEventLog } from './raw-read.ts'

const [url, token, operationId] = process.argv.slice(2)
if (url === undefined || token === undefined || operationId === undefined) {
  process.stderr.write('usage: raw-read-process.ts <url> <token> <operation-id>\n')
  process.exit(2)
}
const cpuBefore = process.cpuUsage()
const read = await readEventLog(url, token, operationId, 240_000)
const cpu = process.cpuUsage(cpuBefore)
process.stdout.write(`${JSON.stringify({ ...read, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`)
