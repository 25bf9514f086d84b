// The Together emulator's root-fs helper process. contree/sandbox.ts starts it (instead of the ConTree
// emulator's own, contree/rootfs/helper.ts) inside the sandbox's user namespace, where it is root; it speaks
// the same line protocol (shared/rootfs-helper.ts) to the same client (contree/rootfs/client.ts). It answers
// the ConTree operations (the sandbox itself relies on them) and the Together emulator's own (ops.ts).
import { rootFsOps } from '../../contree/rootfs/ops.ts'
import { runRootFsHelper } from '../../shared/rootfs-helper.ts'
import { togetherFsOps } from './ops.ts'

runRootFsHelper({ ...rootFsOps, ...togetherFsOps })
