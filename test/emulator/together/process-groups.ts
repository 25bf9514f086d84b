// Which processes are still alive in a set of process groups, read from the host's /proc (every command the
// emulator starts leads a group of its own, and what it starts stays in it).
import { readdirSync, readFileSync } from 'node:fs'

/** The non-zombie processes whose process group is one of `groups` (zombies await a reaper we do not control). */
export function membersOfGroups(groups: ReadonlySet<number>): Array<{ pid: number; group: number }> {
  const members: Array<{ pid: number; group: number }> = []
  if (groups.size === 0) return members
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return members
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const group = Number(fields[2])
      if (fields[0] !== 'Z' && groups.has(group)) members.push({ pid: Number(entry), group })
    } catch {
      // The process went away while we looked.
    }
  }
  return members
}
