/** The emulators every figure runs against, started per figure so retained output is freed between them. */
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { progress } from './report.ts'

export const TOKEN = 'tok-bench-7Kp2xQ'

let warned = false

export async function startEmulator(): Promise<ContreeEmulator> {
  return startContreeEmulator({
    token: TOKEN,
    keepaliveMs: 200,
    // A start-up note (e.g. no /proc in the sandbox on this host) is worth seeing once, not once per figure.
    log: (line) => {
      if (!warned) progress(`emulator: ${line}`)
      warned = true
    },
  })
}

/** Closes the emulator, whatever happened in the figure. */
export async function withEmulator<T>(body: (emulator: ContreeEmulator) => Promise<T>): Promise<T> {
  const emulator = await startEmulator()
  try {
    return await body(emulator)
  } finally {
    await emulator.close()
  }
}

export function baseInputs(emulator: ContreeEmulator, extra: Record<string, string>): Record<string, string> {
  return { 'api-url': emulator.url, token: TOKEN, image: 'tag:busybox:latest', ...extra }
}
