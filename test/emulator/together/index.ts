// The Together Sandbox emulator (builder, management API, an agent per sandbox) for end-to-end tests.
export { startTogetherEmulator } from './server.ts'
export type {
  AppliedFault,
  BuildState,
  BuildView,
  EmulatorCounts,
  FaultAction,
  FaultController,
  FaultRule,
  RecordedRequest,
  SandboxMode,
  SandboxStatus,
  SandboxView,
  SeedFile,
  SnapshotView,
  Surface,
  TogetherEmulator,
  TogetherEmulatorOptions,
} from './types.ts'
