// Runs the loopback OCI registry of the tests (Debian's docker-registry, registry.ts) on its own, for
// workflows that need a registry image without leaving the machine: prints REGISTRY_HOST=127.0.0.1:PORT
// first, then, for each `--push NAME:TAG` (default team/base:1), pushes the busybox catalogue image
// under that name and prints `pushed NAME:TAG sha256:…`; runs until SIGINT/SIGTERM.
// `--push-file NAME:TAG=CONTENT` pushes the catalogue image with /etc/release holding CONTENT (a new
// digest for a new content, so a workflow can make an image "move upstream").
// With `--registry HOST` it starts nothing: it pushes to that running registry and exits.
// Usage: node test/emulator/registry-cli.ts [--registry HOST] [--push NAME:TAG]... [--push-file NAME:TAG=CONTENT]...
import { parseArgs } from 'node:util'
import { pushImage, pushTestImage, startRegistry } from './registry.ts'

const { values } = parseArgs({
  options: { registry: { type: 'string' }, push: { type: 'string', multiple: true }, 'push-file': { type: 'string', multiple: true } },
})

function nameAndTag(text: string): [string, string] {
  const colon = text.lastIndexOf(':')
  if (colon <= 0 || colon === text.length - 1) throw new Error(`expected NAME:TAG, got "${text}"`)
  return [text.slice(0, colon), text.slice(colon + 1)]
}

if (values.registry !== undefined && !/^(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(values.registry)) {
  process.stderr.write(`--registry must be a loopback HOST:PORT, got "${values.registry}"\n`)
  process.exit(2)
}
const registry = values.registry
  ? { url: `http://${values.registry}`, host: values.registry, close: async () => undefined }
  : await startRegistry()
if (!values.registry) process.stdout.write(`REGISTRY_HOST=${registry.host}\n`)
try {
  const plain = values.push ?? (values['push-file'] ? [] : ['team/base:1'])
  for (const target of plain) {
    const [name, tag] = nameAndTag(target)
    const pushed = await pushTestImage(registry.url, name, tag, 'base')
    process.stdout.write(`pushed ${target} ${pushed.digest}\n`)
  }
  for (const spec of values['push-file'] ?? []) {
    const eq = spec.indexOf('=')
    const [name, tag] = nameAndTag(eq < 0 ? spec : spec.slice(0, eq))
    const pushed = await pushImage(registry.url, name, tag, { 'etc/release': `${eq < 0 ? '' : spec.slice(eq + 1)}\n` }, { base: 'base' })
    process.stdout.write(`pushed ${name}:${tag} ${pushed.digest}\n`)
  }
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`)
  await registry.close()
  process.exit(1)
}
if (values.registry) process.exit(0)

let stopping = false
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return
  stopping = true
  registry.close().then(
    () => process.exit(signal === 'SIGINT' ? 130 : 0),
    () => process.exit(1),
  )
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
