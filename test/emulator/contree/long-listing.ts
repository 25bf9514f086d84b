// The `text=1` form of GET /v1/inspect/{uuid}/list: one `ls -l`-like line per entry.
import type { ListedEntry } from './rootfs/ops.ts'

const TYPE_LETTERS: Array<[keyof ListedEntry, string]> = [
  ['isDir', 'd'],
  ['isSymlink', 'l'],
  ['isSocket', 's'],
  ['isFifo', 'p'],
]

function permissions(mode: number): string {
  const bits = 'rwxrwxrwx'
  let text = ''
  for (let i = 0; i < 9; i++) text += mode & (1 << (8 - i)) ? bits[i] : '-'
  const special = (index: number, set: boolean, letter: string) => {
    if (!set) return
    const executable = text[index] !== '-'
    text = text.slice(0, index) + (executable ? letter : letter.toUpperCase()) + text.slice(index + 1)
  }
  special(2, (mode & 0o4000) !== 0, 's')
  special(5, (mode & 0o2000) !== 0, 's')
  special(8, (mode & 0o1000) !== 0, 't')
  return text
}

export function longListingLine(entry: ListedEntry): string {
  const type = TYPE_LETTERS.find(([field]) => entry[field] === true)?.[1] ?? (entry.isRegular ? '-' : '?')
  const when = new Date(entry.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ')
  const name = entry.isSymlink ? `${entry.name} -> ${entry.symlinkTo}` : entry.name
  return `${type}${permissions(entry.mode)} ${entry.nlink} ${entry.owner ?? entry.uid} ${entry.group ?? entry.gid} ${entry.size} ${when} ${name}\n`
}
