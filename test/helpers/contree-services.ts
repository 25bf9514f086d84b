/**
 * The services an end-to-end file runs the bundled action against when it needs the ConTree emulator and
 * the Actions cache: both started once for the file, closed after it, and put back before each test
 * (recorded requests and fault rules cleared, the cache answering normally again). Images and operations
 * persist across tests, as emulator.reset() leaves them.
 */
import { afterAll, beforeAll, beforeEach } from 'vitest'
import { startCacheService, type CacheService } from '../emulator/cache-service.ts'
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator } from '../emulator/contree/types.ts'

export interface ContreeServices {
  /** Requires `Authorization: Bearer <token>`; keepalives every 200 ms so follow streams show them. */
  readonly emulator: ContreeEmulator
  /** Give the action its env() so @actions/cache talks to it. */
  readonly cacheService: CacheService
}

/**
 * Registers the file's hooks: call at the top level of a test file, before its own hooks. `started` gets
 * the services once they run (the file keeps them in its own variables, so its tests read as before).
 */
export function useContreeServices(token: string, started: (services: ContreeServices) => void): void {
  let services: ContreeServices | undefined
  beforeAll(async () => {
    const emulator = await startContreeEmulator({ token, keepaliveMs: 200 })
    services = { emulator, cacheService: await startCacheService() }
    started(services)
  })
  afterAll(async () => {
    await services?.emulator.close()
    await services?.cacheService.close()
  })
  beforeEach(async () => {
    services?.emulator.reset()
    await services?.cacheService.setMode('ok')
  })
}
