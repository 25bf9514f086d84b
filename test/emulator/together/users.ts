// `user[:group]` as Dockerfile USER, COPY --chown and the agent's exec `user` take it: numeric ids or names
// resolved through the root's own /etc/passwd and /etc/group, read as a process chrooted into it would (links
// stay inside the root). An image without them knows no names but root; nothing comes from the host.
import { readFile } from 'node:fs/promises'
import { resolveInRoot } from './root-path.ts'

export interface Identity {
  uid: number
  gid: number
  home: string
}

async function rootEtc(root: string, name: string): Promise<string> {
  try {
    const file = await resolveInRoot(root, `/etc/${name}`, { followLast: true })
    return file.exists ? await readFile(file.hostPath, 'utf8') : ''
  } catch {
    return ''
  }
}

function table(text: string): string[][] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'))
}

/** Resolves `spec`; throws Error(message) naming what could not be found. */
export async function resolveUser(root: string, spec: string): Promise<Identity> {
  const colon = spec.indexOf(':')
  const userPart = colon >= 0 ? spec.slice(0, colon) : spec
  const groupPart = colon >= 0 ? spec.slice(colon + 1) : ''
  const passwd = table(await rootEtc(root, 'passwd'))
  let uid = 0
  let gid: number | null = null
  let home = '/'
  if (userPart !== '') {
    const entry = /^\d+$/.test(userPart) ? passwd.find((row) => row[2] === userPart) : passwd.find((row) => row[0] === userPart)
    if (entry) {
      uid = Number(entry[2])
      gid = Number(entry[3])
      home = entry[5] || '/'
    } else if (/^\d+$/.test(userPart)) {
      uid = Number(userPart)
    } else if (userPart === 'root') {
      // An image without a passwd file still has a root user.
      home = '/root'
    } else {
      throw new Error(`unable to find user ${userPart}: no matching entries in passwd file`)
    }
  } else {
    const rootEntry = passwd.find((row) => row[2] === '0')
    home = rootEntry?.[5] || '/root'
  }
  if (groupPart !== '') {
    if (/^\d+$/.test(groupPart)) {
      gid = Number(groupPart)
    } else {
      const group = table(await rootEtc(root, 'group')).find((row) => row[0] === groupPart)
      if (!group) throw new Error(`unable to find group ${groupPart}: no matching entries in group file`)
      gid = Number(group[2])
    }
  }
  return { uid, gid: gid ?? uid, home }
}
