/**
 * The one place that turns a provider name into a provider: main and post never name a vendor.
 */
import type { RemoteWorkRegistry } from '../cancel.ts'
import type { ProviderName } from '../state.ts'
import { USER_AGENT } from '../version.ts'
import { ContreeProvider } from './contree/provider.ts'
import type { Provider } from './types.ts'

export interface ProviderConnection {
  provider: ProviderName
  /** The service's API base URL. */
  apiUrl: string
  token: string
  project?: string
  /** Where started work is recorded; the post step, which starts none, passes none. */
  registry?: RemoteWorkRegistry
  debug?: (message: string) => void
  eventsIdleTimeoutMs?: number
}

export function createProvider(connection: ProviderConnection): Provider {
  switch (connection.provider) {
    case 'contree':
      return new ContreeProvider({
        apiUrl: connection.apiUrl,
        token: connection.token,
        ...(connection.project ? { project: connection.project } : {}),
        userAgent: USER_AGENT,
        ...(connection.registry ? { registry: connection.registry } : {}),
        ...(connection.debug ? { debug: connection.debug } : {}),
        ...(connection.eventsIdleTimeoutMs ? { eventsIdleTimeoutMs: connection.eventsIdleTimeoutMs } : {}),
      })
    case 'together':
      throw new Error('the Together Sandbox provider is not available yet')
  }
}

/** Where each provider's token comes from when the input is empty (also in post, which has no inputs object). */
export const TOKEN_ENV: Readonly<Record<ProviderName, string>> = { contree: 'CONTREE_TOKEN', together: 'TOGETHER_API_KEY' }
