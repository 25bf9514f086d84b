// Failures that are answers, not emulator faults: an agent route's 404, a COPY that names nothing. The
// filesystem operations that report them may run in the root-fs helper, from where only an error's message
// and code come back, so the kind travels in the code and callers read it the same way in both modes.

/** `agent-<status>`: the agent answers that status with the message; `build`: the build fails with it. */
export type FailureKind = `agent-${400 | 404 | 500}` | 'build'

const PREFIX = 'TOGETHER_'

export class OpFailure extends Error {
  readonly code: string
  constructor(kind: FailureKind, message: string) {
    super(message)
    this.code = PREFIX + kind
  }
}

/** The kind of an OpFailure (thrown here or in the helper), or null for any other error. */
export function failureKind(error: unknown): FailureKind | null {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith(PREFIX) ? (code.slice(PREFIX.length) as FailureKind) : null
}

/** The agent status an OpFailure asks for, or null. */
export function agentStatus(error: unknown): number | null {
  const kind = failureKind(error)
  return kind?.startsWith('agent-') ? Number(kind.slice('agent-'.length)) : null
}
