/**
 * A small JSON document kept in the GitHub Actions cache. The cache is best-effort: every problem is
 * a warning or an info line with what to do about it, never a failure. @actions/cache is imported
 * lazily so runs that never touch the cache (and the post step) do not pay for loading it.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as core from '@actions/core'
import { errorMessage } from '../errors.ts'

export interface CacheStore {
  /** The document under `key`, or under the newest key starting with one of `restoreKeys`. */
  restore(key: string, restoreKeys: string[]): Promise<{ matchedKey: string; data: unknown } | undefined>
  /** Saves `data` under `key`; false when it was not saved (already noted in the log). */
  save(key: string, data: unknown): Promise<boolean>
}

type CacheModule = typeof import('@actions/cache')

const CACHE_FILE = '.remote-sandbox-image-cache.json'

/** A store that never hits: used when caching is turned off or unavailable. */
export const NO_CACHE: CacheStore = {
  restore: async () => undefined,
  save: async () => false,
}

export class ActionsCacheStore implements CacheStore {
  private module: Promise<CacheModule> | undefined
  private readonly file: string
  private announcedUnavailable = false

  constructor(env: NodeJS.ProcessEnv = process.env) {
    // @actions/cache versions an entry by the path strings it is given, so the path must read the
    // same on every runner: a fixed name relative to the workspace (which @actions/cache resolves
    // against), present only for the moment of a restore or save.
    this.file = path.join(env.GITHUB_WORKSPACE || process.cwd(), CACHE_FILE)
  }

  async restore(key: string, restoreKeys: string[]): Promise<{ matchedKey: string; data: unknown } | undefined> {
    const cache = await this.available()
    if (!cache) return undefined
    const mode = process.env.ACTIONS_CACHE_MODE
    if (mode === 'none' || mode === 'write-only') {
      core.info(`Cache restore skipped: ACTIONS_CACHE_MODE=${mode} for this job.`)
      return undefined
    }
    try {
      fs.rmSync(this.file, { force: true })
      const matchedKey = await cache.restoreCache([CACHE_FILE], key, restoreKeys)
      if (!matchedKey) return undefined
      return { matchedKey, data: JSON.parse(fs.readFileSync(this.file, 'utf8')) as unknown }
    } catch (error) {
      core.warning(`Could not read image UUIDs from the Actions cache (key ${key}); continuing without: ${errorMessage(error)}`)
      return undefined
    } finally {
      fs.rmSync(this.file, { force: true })
    }
  }

  async save(key: string, data: unknown): Promise<boolean> {
    const cache = await this.available()
    if (!cache) return false
    const mode = process.env.ACTIONS_CACHE_MODE
    if (mode === 'none' || mode === 'read') {
      core.warning(
        `Image UUIDs were not saved to the Actions cache: the cache is ${mode === 'read' ? 'read-only' : 'off'} for this job (ACTIONS_CACHE_MODE=${mode}, e.g. on pull_request_target or issue_comment triggers). The next run rebuilds what this one built.`,
      )
      return false
    }
    try {
      fs.writeFileSync(this.file, JSON.stringify(data))
      const id = await cache.saveCache([CACHE_FILE], key)
      if (id === -1) {
        core.warning(
          `Image UUIDs were not saved to the Actions cache (key ${key}). If the log above says "cache write denied", give the job \`permissions: actions: write\`; if it says another job may be creating this cache, a parallel job saved the same result and nothing is lost.`,
        )
        return false
      }
      return true
    } catch (error) {
      core.warning(`Could not save image UUIDs to the Actions cache (key ${key}): ${errorMessage(error)}`)
      return false
    } finally {
      fs.rmSync(this.file, { force: true })
    }
  }

  private async available(): Promise<CacheModule | undefined> {
    this.module ??= import('@actions/cache')
    const cache = await this.module
    if (cache.isFeatureAvailable()) return cache
    if (!this.announcedUnavailable) {
      this.announcedUnavailable = true
      const message =
        'The GitHub Actions cache service is not available here (ACTIONS_RESULTS_URL/ACTIONS_CACHE_URL are unset), so image UUIDs are not cached across runs.'
      if (process.env.GITHUB_ACTIONS === 'true') core.warning(message)
      else core.info(message)
    }
    return undefined
  }
}
