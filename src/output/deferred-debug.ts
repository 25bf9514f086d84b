/**
 * Debug lines raised while a stop-commands window is open would be inert text (the runner ignores
 * `::debug::` inside the window), so they wait here until the window closes. Only kept when the
 * runner's debug logging is on.
 */
import * as core from '@actions/core'

const pending: string[] = []

export function deferDebug(message: string): void {
  if (core.isDebug()) pending.push(message)
}

/** Prints what waited; call it whenever no window is open. */
export function flushDebug(): void {
  for (const message of pending.splice(0)) core.debug(message)
}
