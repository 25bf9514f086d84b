/**
 * `npm run demo`: starts the ConTree emulator, runs the bundled action (dist/index.js) the way the
 * runner does with sample inputs, and shows the step's log as the runner receives it, then the outputs.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { startContreeEmulator } from './emulator/contree/index.ts'
import { runAction } from './helpers/run-action.ts'

const token = 'demo-token-0123456789'
const emulator = await startContreeEmulator({ token })
const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-workspace-'))
fs.writeFileSync(path.join(workspace, 'greet.sh'), '#!/bin/sh\necho "$GREETING from $(pwd)"\n', { mode: 0o755 })
fs.writeFileSync(path.join(workspace, 'data.txt'), 'one\ntwo\nthree\n')

const inputs = {
  'api-url': emulator.url,
  token,
  image: 'tag:busybox:latest',
  upload: '.',
  env: 'GREETING=Hello',
  run: [
    './greet.sh',
    'wc -l data.txt',
    'echo "this goes to stderr" >&2',
    "echo '::error::remote text cannot raise annotations'",
    'for i in 1 2 3; do echo "working... $i"; sleep 0.2; done',
  ].join('\n'),
}

console.log(`ConTree emulator at ${emulator.url}; running dist/index.js with:`)
for (const [name, value] of Object.entries(inputs)) {
  console.log(`  ${name}: ${name === 'token' ? '***' : value.replace(/\n/g, '\n    ')}`)
}
const result = await runAction({ workspace, inputs })
console.log('\n──── the step log, as the runner receives it ────')
process.stdout.write(result.stdout)
if (result.stderr) process.stdout.write(result.stderr)
console.log('──── outputs ────')
for (const [name, value] of Object.entries(result.outputs)) console.log(`  ${name} = ${value}`)
console.log(`──── exit code ${result.exitCode}; job summary: ${result.summary.length} bytes ────`)
await emulator.close()
fs.rmSync(workspace, { recursive: true, force: true })
process.exit(result.exitCode ?? 1)
