/**
 * User and group names → numeric ids, the way Docker resolves them against the image's own
 * /etc/passwd and /etc/group (the files of the image the step runs on, not the runner's):
 * - `USER name` runs with the user's primary group and the groups that list the user as a member;
 * - `USER 1000` takes the primary gid of the passwd entry with uid 1000, else gid 0;
 * - `USER u:g` uses exactly that group (no supplementary groups);
 * - `COPY --chown=u` without a group uses the uid as the gid (Docker's documented rule).
 * Unknown names are errors, as in Docker. Pure: the caller supplies the file contents.
 */

export interface PasswdEntry {
  name: string
  uid: number
  gid: number
}

export interface GroupEntry {
  name: string
  gid: number
  members: string[]
}

export interface UserDb {
  passwd: PasswdEntry[]
  group: GroupEntry[]
}

export interface ResolvedUser {
  uid: number
  gid: number
  /** Supplementary groups (without the primary one), sorted. */
  groups: number[]
}

export class UserLookupError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UserLookupError'
  }
}

export const ROOT: ResolvedUser = { uid: 0, gid: 0, groups: [] }
export const EMPTY_USER_DB: UserDb = { passwd: [], group: [] }

const NUMERIC = /^\d+$/
const MAX_ID = 0xffffffff

export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = []
  for (const line of text.split('\n')) {
    const fields = line.split(':')
    if (fields.length < 4 || line.startsWith('#')) continue
    const uid = toId(fields[2] ?? '')
    const gid = toId(fields[3] ?? '')
    if (uid === null || gid === null) continue
    entries.push({ name: fields[0] ?? '', uid, gid })
  }
  return entries
}

export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = []
  for (const line of text.split('\n')) {
    const fields = line.split(':')
    if (fields.length < 3 || line.startsWith('#')) continue
    const gid = toId(fields[2] ?? '')
    if (gid === null) continue
    const members = (fields[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '')
    entries.push({ name: fields[0] ?? '', gid, members })
  }
  return entries
}

/** Whether resolving this USER or --chown value needs the image's passwd/group files at all. */
export function needsUserDb(spec: string, kind: 'user' | 'chown'): boolean {
  if (spec === '' || spec === 'root' || spec === '0' || spec === '0:0') return false
  const [user = '', group] = spec.split(':', 2)
  if (group === undefined) return kind === 'user' || !NUMERIC.test(user)
  return !NUMERIC.test(user) || !NUMERIC.test(group)
}

/** `USER` semantics. */
export function resolveUser(spec: string, db: UserDb): ResolvedUser {
  if (spec === '') return ROOT
  const [userPart = '', groupPart] = splitSpec(spec)
  const entry = findUser(userPart, db)
  const uid = entry?.uid ?? numericOrFail(userPart, 'user', db)
  if (groupPart !== undefined) return { uid, gid: findGroupId(groupPart, db), groups: [] }
  const gid = entry?.gid ?? 0
  const name = entry?.name
  const groups = name === undefined ? [] : [...new Set(db.group.filter((g) => g.members.includes(name) && g.gid !== gid).map((g) => g.gid))].sort((a, b) => a - b)
  return { uid, gid, groups }
}

/** `COPY/ADD --chown` semantics: no supplementary groups; a missing group means gid = uid. */
export function resolveChown(spec: string, db: UserDb): { uid: number; gid: number } {
  const [userPart = '', groupPart] = splitSpec(spec)
  const uid = findUser(userPart, db)?.uid ?? numericOrFail(userPart, 'user', db)
  const gid = groupPart === undefined ? uid : findGroupId(groupPart, db)
  return { uid, gid }
}

function splitSpec(spec: string): [string, string | undefined] {
  const parts = spec.split(':')
  if (parts.length > 2 || parts.some((part) => part === '')) throw new UserLookupError(`"${spec}" is not user[:group]`)
  return [parts[0] ?? '', parts[1]]
}

function findUser(text: string, db: UserDb): PasswdEntry | undefined {
  if (NUMERIC.test(text)) {
    const uid = toId(text)
    return db.passwd.find((entry) => entry.uid === uid)
  }
  return db.passwd.find((entry) => entry.name === text)
}

function findGroupId(text: string, db: UserDb): number {
  if (NUMERIC.test(text)) return numericOrFail(text, 'group', db)
  const entry = db.group.find((g) => g.name === text)
  if (!entry) throw new UserLookupError(`unable to find group ${text}: no matching entries in group file`)
  return entry.gid
}

function numericOrFail(text: string, what: 'user' | 'group', db: UserDb): number {
  const id = NUMERIC.test(text) ? toId(text) : null
  if (id !== null) return id
  if (what === 'user' && text === 'root' && db.passwd.length === 0) return 0
  throw new UserLookupError(`unable to find ${what} ${text}: no matching entries in ${what === 'user' ? 'passwd' : 'group'} file`)
}

function toId(text: string): number | null {
  if (!NUMERIC.test(text)) return null
  const id = Number(text)
  return id <= MAX_ID ? id : null
}
