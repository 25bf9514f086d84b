/**
 * The digest cache as one run may use it: image ids kept in the Actions cache, scoped by the service
 * and the account behind the token.
 */
import * as core from '@actions/core'
import { errorMessage } from '../errors.ts'
import { ActionsCacheStore, NO_CACHE, type CacheStore } from './actions-cache-store.ts'
import type { ServiceScope } from './cache-keys.ts'

/** The service entries are scoped to, and how to ask it who the token acts for. */
export interface CacheService {
  provider: string
  apiUrl: string
  project?: string
  /** Caching turned on (the `cache` input). */
  enabled: boolean
  /** Who the token acts for, as the service names it; never the token or anything derived from it. */
  accountId(signal: AbortSignal): Promise<string>
}

/**
 * The Actions cache as this run may use it: the store, and the scope entries are keyed by. The scope
 * names the account behind the token, which costs one request, made only when the cache is first used;
 * if the account cannot be told, nothing is cached (two accounts must never share image ids).
 */
export class ImageCache {
  readonly store: CacheStore
  private scopePromise: Promise<ServiceScope | undefined> | undefined
  private readonly service: CacheService

  constructor(service: CacheService, store?: CacheStore) {
    this.service = service
    this.store = store ?? (service.enabled ? new ActionsCacheStore() : NO_CACHE)
  }

  /** The scope cache keys use, or undefined when nothing may be cached in this run. */
  scope(signal: AbortSignal): Promise<ServiceScope | undefined> {
    if (this.store === NO_CACHE) return Promise.resolve(undefined)
    const { provider, apiUrl, project } = this.service
    this.scopePromise ??= this.service.accountId(signal).then(
      (account): ServiceScope => ({ provider, apiUrl, ...(project ? { project } : {}), account }),
      (error: unknown): undefined => {
        if (signal.aborted) throw error
        core.warning(`Image UUIDs are not cached in this run: the account behind the token could not be identified (${errorMessage(error)}).`)
        return undefined
      },
    )
    return this.scopePromise
  }
}

