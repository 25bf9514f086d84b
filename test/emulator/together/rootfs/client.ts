// How the Together emulator runs filesystem operations on trees with real owners, the ConTree ones and its
// own alike: in its own process when it is root, else in the sandbox's root-fs helper (helper.ts, which
// answers both sets). Errors keep their code either way (see failure.ts).
import { fileURLToPath } from 'node:url'
import { rootFsOps, type RootFsOps } from '../../contree/rootfs/ops.ts'
import type { Sandbox } from '../../contree/sandbox.ts'
import { togetherFsOps, type TogetherFsOps } from './ops.ts'

/** The helper script contree/sandbox.ts starts for this emulator in user-namespace mode. */
export const TOGETHER_HELPER = fileURLToPath(new URL('./helper.ts', import.meta.url))

export type FsOps = RootFsOps & TogetherFsOps
type OpArgs<K extends keyof FsOps> = Parameters<FsOps[K]>[0]
type OpResult<K extends keyof FsOps> = Awaited<ReturnType<FsOps[K]>>

export interface TogetherFs {
  call<K extends keyof FsOps>(op: K, args: OpArgs<K>): Promise<OpResult<K>>
}

type UntypedCall = (op: string, args: unknown) => Promise<unknown>

/** The operations for `sandbox`, which must have been started with TOGETHER_HELPER. */
export function togetherFs(sandbox: Sandbox): TogetherFs {
  let call: UntypedCall
  if (sandbox.mode === 'root') {
    const ops = { ...rootFsOps, ...togetherFsOps } as Record<string, (args: unknown) => Promise<unknown>>
    call = async (op, args) => (ops[op] as (args: unknown) => Promise<unknown>)(args)
  } else {
    // The helper's client is typed for the ConTree operations; TOGETHER_HELPER answers the others as well.
    call = sandbox.fs.call.bind(sandbox.fs) as unknown as UntypedCall
  }
  return { call: (op, args) => call(op, args) as Promise<never> }
}
