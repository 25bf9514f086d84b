/**
 * Turns a RUN into the spawn API's shape (command, args, shell) for the SHELL and USER in force.
 *
 * USER: the sandbox API has no user field, so the command is wrapped here and `user` is also kept on
 * the step for display and cache keys. A named user (`USER app`) runs through
 * `su -s /bin/sh -c <command> <user>` as contree-cli does (su reads /etc/passwd inside the image,
 * so the user must exist there, as in Docker). A numeric uid or a `user:group` pair cannot go through
 * su, so it runs through util-linux `setpriv --reuid --regid --clear-groups` (a numeric uid without a
 * group keeps gid 0, Docker's fallback when the user has no passwd entry). root/0 is not wrapped.
 */

export interface RunSpec {
  /** Shell expression when `shell` is true, else the executable. */
  command: string
  args?: string[]
  shell: boolean
}

export const DEFAULT_SHELL: readonly string[] = ['/bin/sh', '-c']

export type RunInput = { form: 'shell'; text: string } | { form: 'exec'; argv: readonly string[] }

export function buildRunSpec(input: RunInput, shell: readonly string[], user?: string): RunSpec {
  const argv = input.form === 'exec' ? [...input.argv] : [...shell, input.text]
  const defaultShell = input.form === 'shell' && sameArray(shell, DEFAULT_SHELL)
  if (user === undefined || isRoot(user)) {
    if (defaultShell && input.form === 'shell') return { command: input.text, shell: true }
    return withArgs(argv[0] ?? '', argv.slice(1))
  }
  const [name = '', group] = user.split(':', 2)
  if (group === undefined && !/^\d+$/.test(name)) {
    // su takes one command string; the default shell form's text is already that string.
    const inner = defaultShell && input.form === 'shell' ? input.text : shellJoin(argv)
    return { command: 'su', args: ['-s', '/bin/sh', '-c', inner, name], shell: false }
  }
  const ids = [`--reuid=${name}`]
  if (group !== undefined && group !== '') ids.push(`--regid=${group}`)
  return { command: 'setpriv', args: [...ids, '--clear-groups', '--', ...argv], shell: false }
}

/** Quotes argv for /bin/sh: every word single-quoted unless it is plainly safe. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map((word) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(' ')
}

function isRoot(user: string): boolean {
  const [name = '', group] = user.split(':', 2)
  return (name === 'root' || name === '0') && (group === undefined || group === 'root' || group === '0')
}

function withArgs(command: string, args: string[]): RunSpec {
  return args.length > 0 ? { command, args, shell: false } : { command, shell: false }
}

function sameArray(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i])
}
