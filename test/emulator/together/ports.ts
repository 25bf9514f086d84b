// GET /api/v1/ports: the TCP ports the sandbox's own processes listen on, read from the kernel (a sandbox
// shares the host's network here, so /proc/net/tcp{,6} is filtered by the sockets its processes hold). Their
// /proc/<pid>/fd belongs to the sandbox's users, so this runs as the sandbox's root (rootfs/ops.ts).
import { readdir, readFile, readlink } from 'node:fs/promises'
import { membersOfGroups } from './process-groups.ts'

const LISTEN = '0A'

function ipv4(hex: string): string {
  const bytes = Buffer.from(hex, 'hex')
  return [...bytes].reverse().join('.')
}

/** /proc/net/tcp6 writes the 16 bytes as four host-order (little-endian) 32-bit words. */
function ipv6(hex: string): string {
  const bytes = Buffer.alloc(16)
  for (let word = 0; word < 4; word++) {
    const le = Buffer.from(hex.slice(word * 8, word * 8 + 8), 'hex')
    for (let i = 0; i < 4; i++) bytes[word * 4 + i] = le[3 - i] as number
  }
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  // Collapse the longest run of zero groups, as the usual textual form does.
  let best = { start: -1, length: 0 }
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i += 1
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j += 1
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i }
    i = j
  }
  if (best.start < 0) return groups.join(':')
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.length).join(':')}`
}

async function listeningSockets(file: string, v6: boolean): Promise<Map<string, { port: number; address: string }>> {
  const sockets = new Map<string, { port: number; address: string }>()
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return sockets
  }
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/)
    if (fields.length < 10 || fields[3] !== LISTEN) continue
    const [addressHex, portHex] = (fields[1] as string).split(':') as [string, string]
    sockets.set(fields[9] as string, { port: Number.parseInt(portHex, 16), address: v6 ? ipv6(addressHex) : ipv4(addressHex) })
  }
  return sockets
}

export async function openPorts(groups: Iterable<number>): Promise<Array<{ port: number; address: string }>> {
  const inodes = new Set<string>()
  for (const { pid } of membersOfGroups(new Set(groups))) {
    let fds: string[]
    try {
      fds = await readdir(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
      const match = /^socket:\[(\d+)\]$/.exec(target)
      if (match) inodes.add(match[1] as string)
    }
  }
  const found = new Map<string, { port: number; address: string }>()
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    for (const [inode, socket] of await listeningSockets(file, v6)) {
      if (inodes.has(inode)) found.set(`${socket.address}:${socket.port}`, socket)
    }
  }
  return [...found.values()].sort((a, b) => a.port - b.port || a.address.localeCompare(b.address))
}
