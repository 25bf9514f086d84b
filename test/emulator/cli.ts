// `npm run emulator`: starts the ConTree emulator and prints CONTREE_URL=… for other processes
// (demo, benchmarks). Usage: node test/emulator/cli.ts [--port N] [--token T] [--project P] [--no-gzip]
import { parseArgs } from 'node:util'
import { startContreeEmulator } from './contree/index.ts'
import { closeOnSignal } from './shared/close-on-signal.ts'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    token: { type: 'string' },
    project: { type: 'string' },
    'no-gzip': { type: 'boolean' },
  },
})

const port = values.port === undefined ? 0 : Number(values.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`--port must be an integer 0..65535, got ${values.port}\n`)
  process.exit(2)
}

let emulator: Awaited<ReturnType<typeof startContreeEmulator>>
try {
  emulator = await startContreeEmulator({
    port,
    token: values.token,
    project: values.project,
    gzip: !values['no-gzip'],
    log: (line) => process.stderr.write(line + '\n'),
  })
} catch (error) {
  // Most often the sandbox cannot be made here; the message says what to install or configure.
  process.stderr.write(`${(error as Error).message}\n`)
  process.exit(1)
}
// One line on stdout, written before anything else, so a parent process can read the URL.
process.stdout.write(`CONTREE_URL=${emulator.url}\n`)

closeOnSignal(emulator)
