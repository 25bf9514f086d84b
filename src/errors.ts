/** Turns any thrown value into a one-line message; never loses the failure. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message || error.name
  if (typeof error === 'string') return error
  try {
    return JSON.stringify(error) ?? String(error)
  } catch {
    return String(error)
  }
}

/** A workflow input that cannot be used. The message names the input and what was expected. */
export class InputError extends Error {
  readonly input: string
  constructor(input: string, message: string) {
    super(`Input '${input}': ${message}`)
    this.name = 'InputError'
    this.input = input
  }
}

/**
 * The service token is empty. Kept apart from other input errors because on a pull request from a fork
 * it is expected (no secrets reach such a run), and the step may then end with a notice instead.
 */
export class MissingTokenError extends InputError {
  /** `fail-on-missing-token`: fail the step even where a missing token is expected. */
  readonly failOnMissingToken: boolean
  constructor(message: string, failOnMissingToken: boolean) {
    super('token', message)
    this.name = 'MissingTokenError'
    this.failOnMissingToken = failOnMissingToken
  }
}
