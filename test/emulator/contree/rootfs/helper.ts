// The ConTree emulator's root-fs helper process (see shared/rootfs-helper.ts for the line protocol): it
// answers the operations of ops.ts, as root or as root of the sandbox's user namespace.
import { runRootFsHelper } from '../../shared/rootfs-helper.ts'
import { rootFsOps } from './ops.ts'

runRootFsHelper(rootFsOps)
