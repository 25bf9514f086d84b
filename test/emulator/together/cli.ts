// Runs the Together emulator on its own for other processes (demo, benchmarks) and prints where it is:
// TOGETHER_BASE_URL, TOGETHER_BUILDER_URL and TOGETHER_API_KEY, one per line, before anything else.
// Usage: bash scripts/node24.sh node test/emulator/together/cli.ts [--api-key K] [--no-gzip]
import { parseArgs } from 'node:util'
import { closeOnSignal } from '../shared/close-on-signal.ts'
import { startTogetherEmulator } from './index.ts'

const { values } = parseArgs({ options: { 'api-key': { type: 'string' }, 'no-gzip': { type: 'boolean' } } })

const emulator = await startTogetherEmulator({
  apiKey: values['api-key'],
  gzip: !values['no-gzip'],
  log: (line) => process.stderr.write(line + '\n'),
})
process.stdout.write(`TOGETHER_BASE_URL=${emulator.apiUrl}\nTOGETHER_BUILDER_URL=${emulator.builderUrl}\nTOGETHER_API_KEY=${emulator.apiKey}\n`)

closeOnSignal(emulator)
