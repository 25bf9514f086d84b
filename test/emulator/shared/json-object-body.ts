// The one reading of a JSON request body both emulators share: it must parse and be an object (not an
// array, not null), else the request is a 400 with the same wording in both. Each emulator throws its own
// error type, since each answers errors in its own wire shape.

/** An emulator's handler error: `new HttpError(status, message)`. */
export type HttpErrorType = new (status: number, message: string) => Error

export function jsonObjectBody(raw: Buffer, HttpError: HttpErrorType): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(raw.toString('utf8'))
  } catch {
    throw new HttpError(400, 'request body is not valid JSON')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, 'request body must be a JSON object')
  }
  return value as Record<string, unknown>
}
