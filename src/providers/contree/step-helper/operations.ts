/**
 * The step helper's operations file (see helper.c for what each operation does): a typed list in,
 * NUL-separated tokens out. Paths are absolute image paths; modes are permission bits.
 */
import { STEP_HELPER_BASE64, STEP_HELPER_SHA256 } from './helper-binary.ts'

/** Where a step's helper, its operations and its staged files are placed (removed by the helper). */
export const STAGING_DIR = '/.sandbox-action'
export const HELPER_PATH = `${STAGING_DIR}/helper`
export const OPERATIONS_PATH = `${STAGING_DIR}/operations`
/** Environment variables with this prefix carry secrets to the helper and never reach the command. */
export const SECRET_ENV_PREFIX = 'SANDBOX_ACTION_'

export interface Owner {
  uid: number
  gid: number
}

export type HelperOp =
  | { op: 'mkdirs'; path: string; mode: number; owner: Owner }
  | { op: 'dir'; path: string; mode: number; owner: Owner; parents: Owner }
  | { op: 'file'; staged: string; path: string; mode: number; owner: Owner; parents: Owner; intoDirName?: string }
  | { op: 'symlink'; target: string; path: string; owner: Owner; parents: Owner }
  | { op: 'mount-dir'; path: string; mode: number; owner: Owner }
  | { op: 'mount-tree'; path: string }
  | { op: 'secret-file'; variable: string; path: string; mode: number; owner: Owner }
  | { op: 'secret-env'; variable: string; name: string }
  | { op: 'user'; uid: number; gid: number; groups: readonly number[] }
  | { op: 'cwd'; path: string }
  | { op: 'exec'; argv: readonly string[] }

export function encodeOperations(ops: readonly HelperOp[]): Uint8Array {
  const tokens: string[] = []
  const octal = (mode: number): string => (mode & 0o7777).toString(8)
  const owner = (o: Owner): string[] => [String(o.uid), String(o.gid)]
  for (const op of ops) {
    switch (op.op) {
      case 'mkdirs':
        tokens.push('d', op.path, octal(op.mode), ...owner(op.owner))
        break
      case 'dir':
        tokens.push('D', op.path, octal(op.mode), ...owner(op.owner), ...owner(op.parents))
        break
      case 'file':
        tokens.push('F', op.staged, op.path, octal(op.mode), ...owner(op.owner), ...owner(op.parents), op.intoDirName ?? '')
        break
      case 'symlink':
        tokens.push('L', op.target, op.path, ...owner(op.owner), ...owner(op.parents))
        break
      case 'mount-dir':
        tokens.push('m', op.path, octal(op.mode), ...owner(op.owner))
        break
      case 'mount-tree':
        tokens.push('M', op.path)
        break
      case 'secret-file':
        tokens.push('s', op.variable, op.path, octal(op.mode), ...owner(op.owner))
        break
      case 'secret-env':
        tokens.push('e', op.variable, op.name)
        break
      case 'user':
        tokens.push('u', String(op.uid), String(op.gid), String(op.groups.length), ...op.groups.map(String))
        break
      case 'cwd':
        tokens.push('c', op.path)
        break
      case 'exec':
        tokens.push('x', String(op.argv.length), ...op.argv)
        break
    }
  }
  for (const token of tokens) {
    // A NUL inside a token would split it; no path, name or argument can carry one in Linux anyway.
    if (token.includes('\0')) throw new Error(`a step operation contains a NUL character: ${JSON.stringify(token)}`)
  }
  return new TextEncoder().encode(tokens.map((token) => `${token}\0`).join(''))
}

let helperBytes: Uint8Array | undefined

/** The helper program (linux/amd64, static). */
export function stepHelperBinary(): { bytes: Uint8Array; sha256: string } {
  helperBytes ??= new Uint8Array(Buffer.from(STEP_HELPER_BASE64, 'base64'))
  return { bytes: helperBytes, sha256: STEP_HELPER_SHA256 }
}
