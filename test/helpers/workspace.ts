/** Workspaces for end-to-end runs: a fresh temp directory holding the files a test names. */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

/**
 * A new directory under the temp dir (its name starts with `prefix`) holding `files` (relative paths,
 * parent directories created). `mode`, when given, is set on every file whatever the umask.
 */
export function workspaceWith(prefix: string, files: Record<string, string>, opts: { mode?: number } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, content)
    if (opts.mode !== undefined) fs.chmodSync(file, opts.mode)
  }
  return dir
}
