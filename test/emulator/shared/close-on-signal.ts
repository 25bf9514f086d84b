// How an emulator run on its own (its cli.ts) stops: SIGINT or SIGTERM closes it (so its sandboxed processes
// and temp dirs go with it) and the process exits 130 after Ctrl-C, 0 after SIGTERM, 1 if closing failed.
// A second signal while closing is ignored rather than cutting the clean-up short.

/** Installs the SIGINT/SIGTERM handlers that close `emulator` and exit. */
export function closeOnSignal(emulator: { close(): Promise<void> }): void {
  let stopping = false
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    emulator.close().then(
      () => process.exit(signal === 'SIGINT' ? 130 : 0),
      (error: unknown) => {
        process.stderr.write(`emulator close failed: ${(error as Error).message}\n`)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}
