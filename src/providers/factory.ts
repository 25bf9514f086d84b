/**
 * The one place that turns a provider name into a provider: main and post never name a vendor.
 */
import type { Inputs } from '../inputs.ts'
import type { LiveWork, ProviderName } from '../state.ts'
import { USER_AGENT } from '../version.ts'
import { ContreeProvider } from './contree/provider.ts'
import { settingsForCleanup } from './together/inputs.ts'
import { TogetherProvider } from './together/provider.ts'
import type { LiveWorkRegistry, Provider } from './types.ts'

export interface ProviderMachinery {
  /** Where started work is recorded. */
  registry?: LiveWorkRegistry
  debug?: (message: string) => void
  eventsIdleTimeoutMs?: number
}

/** The provider the inputs name, configured by its own section of them. */
export function createProvider(inputs: Inputs, machinery: ProviderMachinery = {}): Provider {
  switch (inputs.provider) {
    case 'contree':
      return new ContreeProvider({
        inputs,
        userAgent: USER_AGENT,
        ...(machinery.registry ? { registry: machinery.registry } : {}),
        ...(machinery.debug ? { debug: machinery.debug } : {}),
        ...(machinery.eventsIdleTimeoutMs ? { eventsIdleTimeoutMs: machinery.eventsIdleTimeoutMs } : {}),
      })
    case 'together':
      if (!inputs.together) throw new Error('internal: provider together without its settings')
      return new TogetherProvider({ settings: inputs.together, userAgent: USER_AGENT, workspace: inputs.workspace })
  }
}

/** Where each provider's token comes from when the input is empty (also in post, which has no inputs object). */
export const TOKEN_ENV: Readonly<Record<ProviderName, string>> = { contree: 'CONTREE_TOKEN', together: 'TOGETHER_API_KEY' }

/**
 * A provider able to inspect and cancel one piece of work recorded in step state (the post step):
 * every such call names the work's own endpoint, so only the token is needed.
 */
export function createCleanupProvider(work: LiveWork, token: string): Provider {
  switch (work.provider) {
    case 'contree':
      return new ContreeProvider({
        inputs: cleanupInputs(work, token),
        userAgent: USER_AGENT,
      })
    case 'together':
      return new TogetherProvider({ settings: settingsForCleanup(token, work.endpoint), userAgent: USER_AGENT, workspace: process.cwd() })
  }
}

function cleanupInputs(work: LiveWork, token: string): Inputs {
  return {
    provider: 'contree',
    mode: 'run',
    apiUrl: work.endpoint,
    token,
    ...(work.project ? { project: work.project } : {}),
    noCache: false,
    cache: false,
    failOnExitCode: true,
    summary: false,
    timeoutSeconds: 60,
    deadlineSeconds: 60,
    outputLimitBytes: 1024,
    workspace: process.cwd(),
  }
}
