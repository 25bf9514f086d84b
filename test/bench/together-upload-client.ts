/**
 * The action's side of the upload figure, in its own process so its memory is its own: stream a
 * listed context (the tree as JSON, listed and hashed beforehand, as a build does before it knows it
 * must upload) as the tar.gz multipart submit to the URL given. With `--list`, it lists and hashes
 * the context itself instead, and uploads nothing (the figure for that phase).
 * Prints one JSON line: {ms, tarBytes, wireBytes} (upload) or {ms, files} (list).
 * Usage: node together-upload-client.ts <builder url> <tree.json> | --list <context dir>
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { TogetherBuilder } from '../../src/providers/together/builder.ts'
import { contextArchive, tarSize } from '../../src/providers/together/context-archive.ts'
import { readContextTree, type ContextTree } from '../../src/providers/together/context-tree.ts'

const [first, second] = process.argv.slice(2) as [string, string]
const started = performance.now()
if (first === '--list') {
  const tree = await readContextTree(second, path.join(second, 'Dockerfile'))
  process.stdout.write(`${JSON.stringify({ ms: performance.now() - started, files: tree.files.length })}\n`)
} else {
  const tree = JSON.parse(readFileSync(second, 'utf8')) as ContextTree
  const uploadStarted = performance.now()
  const builder = new TogetherBuilder({ baseUrl: first, token: 'bench', userAgent: 'bench' })
  const buildId = await builder.submit({ imageName: 'bench:1', dockerfile: tree.dockerfile, buildArgs: {}, nydus: true, context: () => contextArchive(tree) })
  process.stdout.write(`${JSON.stringify({ ms: performance.now() - uploadStarted, tarBytes: tarSize(tree), wireBytes: Number(buildId.replace('sink-', '')) })}\n`)
}
