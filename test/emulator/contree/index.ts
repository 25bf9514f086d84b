// The ConTree v1 emulator used by end-to-end tests, the demo and the benchmarks.
export { startContreeEmulator } from './server.ts'
export type {
  AppliedFault,
  ContreeEmulator,
  ContreeEmulatorOptions,
  FaultAction,
  FaultController,
  FaultRule,
  ImageView,
  OperationKind,
  OperationRecordView,
  OperationStatus,
  RecordedRequest,
  SandboxMode,
  SeedFile,
} from './types.ts'
