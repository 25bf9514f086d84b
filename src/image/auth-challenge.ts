/**
 * Parses `WWW-Authenticate` challenges (RFC 7235), the way registries send them:
 * `Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push"`.
 * Quoted values may contain commas and escaped quotes, and several challenges may share one header.
 */

export interface AuthChallenge {
  /** Lower-cased scheme, e.g. `bearer` or `basic`. */
  scheme: string
  /** Parameter names lower-cased; values unquoted. */
  params: Record<string, string>
}

export function parseAuthChallenges(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = []
  let i = 0
  const n = header.length
  const skipSpaceAndCommas = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t' || header[i] === ',')) i++
  }
  const readToken = (): string => {
    const start = i
    while (i < n && !/[\s,="]/.test(header[i] ?? '')) i++
    return header.slice(start, i)
  }
  const skipSpace = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++
  }

  let current: AuthChallenge | undefined
  while (i < n) {
    skipSpaceAndCommas()
    if (i >= n) break
    const tokenStart = i
    const token = readToken()
    if (token === '') {
      // Stray character (for example an unmatched quote): skip it rather than loop forever.
      i++
      continue
    }
    skipSpace()
    if (header[i] === '=' && current !== undefined) {
      i++
      skipSpace()
      let value: string
      if (header[i] === '"') {
        i++
        let out = ''
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++
          out += header[i]
          i++
        }
        i++ // closing quote
        value = out
      } else {
        value = readToken()
      }
      current.params[token.toLowerCase()] = value
      continue
    }
    if (header[i] === '=' && current === undefined) {
      // A parameter before any scheme: malformed; ignore it.
      i = tokenStart + token.length + 1
      readToken()
      continue
    }
    current = { scheme: token.toLowerCase(), params: {} }
    challenges.push(current)
  }
  return challenges
}
