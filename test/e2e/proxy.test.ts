/** End-to-end: the action's traffic goes through HTTP(S)_PROXY, and NO_PROXY is honoured. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startConnectProxy, type ConnectProxy } from '../emulator/connect-proxy.ts'
import { startContreeEmulator } from '../emulator/contree/index.ts'
import type { ContreeEmulator } from '../emulator/contree/types.ts'
import { runAction } from '../helpers/run-action.ts'

const TOKEN = 'tok-proxy-7Fh2'
let emulator: ContreeEmulator
let proxy: ConnectProxy

beforeAll(async () => {
  emulator = await startContreeEmulator({ token: TOKEN })
  proxy = await startConnectProxy()
})
afterAll(async () => {
  await emulator?.close()
  await proxy?.close()
})

const inputs = () => ({ 'api-url': emulator.url, token: TOKEN, image: 'tag:busybox:latest', run: 'echo through-the-proxy' })
const emulatorHost = () => new URL(emulator.url).host

describe('proxies', () => {
  it('sends every request through the proxy from the environment', async () => {
    proxy.tunnels.length = 0
    const result = await runAction({ inputs: inputs(), env: { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: '' } })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(result.stdout).toContain('through-the-proxy')
    expect(proxy.tunnels.length).toBeGreaterThan(0)
    expect(new Set(proxy.tunnels)).toEqual(new Set([emulatorHost()]))
  })

  it.each([['the host', () => '127.0.0.1'], ['a wildcard', () => '*']])('bypasses the proxy for %s in NO_PROXY', async (_name, noProxy) => {
    proxy.tunnels.length = 0
    const result = await runAction({ inputs: inputs(), env: { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: noProxy() } })
    expect(result.exitCode, result.stdout).toBe(0)
    expect(proxy.tunnels).toEqual([])
  })
})
