// The Together emulator's own operations on image, stage and sandbox trees that need real owners, next to
// the ConTree emulator's (copy, move, remove, unpack a layer …; contree/rootfs/ops.ts): the agent's file
// routes, a build's COPY and WORKDIR, user names looked up in an image, and the ports the sandbox's
// processes listen on (their /proc/<pid>/fd is theirs). They run as root of the
// sandbox's user namespace in the root-fs helper (or in the emulator when it is root), take one JSON-able
// argument object and return JSON-able data; OpFailure reports what the caller answers with.
import {
  checkWritable,
  createSandboxDirectory,
  deleteSandboxDirectory,
  deleteSandboxFile,
  fileAction,
  listSandboxDirectory,
  readSandboxFile,
  statSandboxFile,
  writeSandboxFile,
} from '../agent-files.ts'
import { copyIntoRoot, hashSources, looksLikeArchive, matchSources, type CopySource } from '../build-copy.ts'
import { openPorts } from '../ports.ts'
import { resolveInRoot } from '../root-path.ts'
import { resolveUser, type Identity } from '../users.ts'

interface AgentPath {
  root: string
  path: string
}

export const togetherFsOps = {
  resolveUser: ({ root, spec }: { root: string; spec: string }): Promise<Identity> => resolveUser(root, spec),

  /** mkdir -p inside the root; the directories it creates are 0755 and belong to `owner` (default root). */
  async makeDirectories({ root, path, owner }: { root: string; path: string; owner?: { uid: number; gid: number } }): Promise<string> {
    return (await resolveInRoot(root, path, { followLast: true, createDirs: true, createLast: true, owner })).rootPath
  },

  matchCopySources: ({ base, patterns }: { base: string; patterns: string[] }): Promise<CopySource[]> => matchSources(base, patterns),
  hashCopySources: ({ sources }: { sources: CopySource[] }): Promise<string> => hashSources(sources),
  looksLikeArchive: ({ path }: { path: string }): Promise<boolean> => looksLikeArchive(path),
  copyIntoRoot: ({ root, sources, dest, owner, mode }: { root: string; sources: CopySource[]; dest: string; owner: { uid: number; gid: number } | null; mode: number | null }) =>
    copyIntoRoot(root, sources, dest, { owner, mode }),

  readAgentFile: ({ root, path }: AgentPath) => readSandboxFile(root, path),
  checkAgentWritable: ({ root, path }: AgentPath) => checkWritable(root, path),
  writeAgentFile: ({ root, path, source }: AgentPath & { source: string }) => writeSandboxFile(root, path, source),
  deleteAgentFile: ({ root, path }: AgentPath) => deleteSandboxFile(root, path),
  statAgentFile: ({ root, path }: AgentPath) => statSandboxFile(root, path),
  createAgentDirectory: ({ root, path }: AgentPath) => createSandboxDirectory(root, path),
  listAgentDirectory: ({ root, path }: AgentPath) => listSandboxDirectory(root, path),
  deleteAgentDirectory: ({ root, path }: AgentPath) => deleteSandboxDirectory(root, path),
  agentFileAction: ({ root, from, action, to, recursive }: { root: string; from: string; action: 'move' | 'copy'; to: string; recursive: boolean }) =>
    fileAction(root, from, action, to, recursive),

  /** `groups`: the process groups of a sandbox's execs. */
  listeningPorts: ({ groups }: { groups: number[] }) => openPorts(groups),
}

export type TogetherFsOps = typeof togetherFsOps
