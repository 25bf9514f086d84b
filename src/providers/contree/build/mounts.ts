/**
 * `RUN --mount=…` values (BuildKit's csv syntax: `type=cache,target=/root/.cache,mode=0755`). Each
 * mount exists for its RUN only and leaves nothing in the image:
 * - cache / tmpfs: an empty directory at the target (BuildKit with an empty cache);
 * - secret: a file (or an env variable with `env=`) holding a value from the `secrets` input;
 * - bind: files of the build context (or of a stage / image with `from=`) at the target.
 * `ssh` mounts and unknown options are refused. Pure parsing; the executor places and removes.
 */

/** `from=` as written until the planner knows the stages; then the stage or image it names. */
export type MountSource = { kind: 'context' } | { kind: 'stage-or-image'; name: string } | { kind: 'stage'; index: number } | { kind: 'image'; ref: string }

export type RunMount =
  | { type: 'cache' | 'tmpfs'; target: string; mode: number; uid: number; gid: number }
  | { type: 'secret'; id: string; target: string | null; env: string | null; required: boolean; mode: number; uid: number; gid: number }
  | { type: 'bind'; target: string; source: string; from: MountSource; readWrite: boolean }

export class MountError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MountError'
  }
}

const OPTIONS: Readonly<Record<string, ReadonlySet<string>>> = {
  cache: new Set(['target', 'dst', 'destination', 'id', 'sharing', 'mode', 'uid', 'gid', 'ro', 'readonly', 'rw', 'readwrite']),
  tmpfs: new Set(['target', 'dst', 'destination', 'size']),
  secret: new Set(['id', 'target', 'dst', 'destination', 'env', 'required', 'mode', 'uid', 'gid']),
  bind: new Set(['target', 'dst', 'destination', 'source', 'src', 'from', 'rw', 'readwrite', 'ro', 'readonly']),
}

/**
 * Parses one `--mount` value. `resolvePath` makes a relative target absolute (BuildKit joins it to
 * the WORKDIR); `substitute` expands build variables in values.
 */
export function parseMount(value: string, resolvePath: (target: string) => string): RunMount {
  const options = new Map<string, string>()
  for (const field of splitCsv(value)) {
    const eq = field.indexOf('=')
    const key = (eq === -1 ? field : field.slice(0, eq)).trim().toLowerCase()
    const val = eq === -1 ? '' : field.slice(eq + 1)
    if (key === '') continue
    options.set(key, eq === -1 && isFlagOption(key) ? 'true' : val)
  }
  const type = (options.get('type') ?? 'bind').toLowerCase()
  options.delete('type')
  if (type === 'ssh') throw new MountError('--mount=type=ssh is not supported: the remote sandbox has no access to the runner\'s SSH agent')
  const allowed = OPTIONS[type]
  if (!allowed) throw new MountError(`--mount type "${type}" is unknown (expected bind, cache, tmpfs, secret)`)
  for (const key of options.keys()) {
    if (!allowed.has(key)) throw new MountError(`--mount=type=${type} does not take the option "${key}"`)
  }
  const rawTarget = options.get('target') ?? options.get('dst') ?? options.get('destination')
  const target = rawTarget === undefined || rawTarget === '' ? null : resolvePath(rawTarget)
  const id = (name: string, fallback: number): number => {
    const text = options.get(name)
    if (text === undefined) return fallback
    if (!/^\d+$/.test(text)) throw new MountError(`--mount=type=${type}: ${name}="${text}" must be a number`)
    return Number(text)
  }
  const mode = (fallback: number): number => {
    const text = options.get('mode')
    if (text === undefined) return fallback
    if (!/^[0-7]{1,4}$/.test(text)) throw new MountError(`--mount=type=${type}: mode="${text}" must be octal`)
    return Number.parseInt(text, 8)
  }
  switch (type) {
    case 'cache':
    case 'tmpfs': {
      if (!target) throw new MountError(`--mount=type=${type} needs a target`)
      return { type, target, mode: mode(0o755), uid: id('uid', 0), gid: id('gid', 0) }
    }
    case 'secret': {
      const env = options.get('env') ?? null
      const secretId = options.get('id') || (rawTarget ? rawTarget.split('/').filter((p) => p !== '').at(-1) : undefined)
      if (!secretId) throw new MountError('--mount=type=secret needs an id (or a target to take it from)')
      if (env !== null && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) throw new MountError(`--mount=type=secret: env="${env}" is not a variable name`)
      const required = /^(true|1)$/i.test(options.get('required') ?? 'false')
      // Without env= the secret is a file at /run/secrets/<id> unless a target says otherwise (BuildKit).
      const file = target ?? (env === null ? `/run/secrets/${secretId}` : null)
      return { type, id: secretId, target: file, env, required, mode: mode(0o400), uid: id('uid', 0), gid: id('gid', 0) }
    }
    default: {
      if (!target) throw new MountError('--mount=type=bind needs a target')
      const from = options.get('from')
      const readWrite = options.has('rw') || options.has('readwrite')
      return {
        type: 'bind',
        target,
        source: options.get('source') ?? options.get('src') ?? '.',
        from: from === undefined || from === '' ? { kind: 'context' } : { kind: 'stage-or-image', name: from },
        readWrite,
      }
    }
  }
}

function isFlagOption(key: string): boolean {
  return ['ro', 'readonly', 'rw', 'readwrite', 'required'].includes(key)
}

/** Splits on commas outside double quotes; quotes are removed (Go's csv reader, as BuildKit uses). */
function splitCsv(value: string): string[] {
  const fields: string[] = []
  let field = ''
  let quoted = false
  for (const ch of value) {
    if (ch === '"') quoted = !quoted
    else if (ch === ',' && !quoted) {
      fields.push(field)
      field = ''
    } else field += ch
  }
  fields.push(field)
  return fields
}
