// Where a host program is: the first directory of a PATH-style list holding an executable file of that
// name. Empty entries are skipped (they would mean the current directory, which no lookup here wants).
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Absolute path of `name` in `searchPath` (':'-separated), or undefined when no directory has it. */
export function findExecutable(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not in this directory
    }
  }
  return undefined
}
