// Image references and the builder's naming rules (protocol §1.2, §1.7): references are normalised the way
// the management API documents it (`[registry/][repository/]name[:tag]`, Docker Hub and `latest` by default).

/** One path component of a repository name, as the distribution spec allows it. */
const NAME_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const DIGEST = /^sha256:[a-f0-9]{64}$/

export interface ImageReference {
  registry: string
  repository: string
  tag: string
  digest: string | null
  /** `registry/repository:tag` (or `@digest`): the key images are stored under. */
  normalized: string
}

/** Parses a reference; null when it is not one. */
export function parseReference(text: string): ImageReference | null {
  if (text === '' || text.length > 512 || /\s/.test(text)) return null
  let rest = text
  let digest: string | null = null
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST.test(digest)) return null
  }
  let tag = 'latest'
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) return null
  }
  const parts = rest.split('/')
  let registry = 'docker.io'
  const first = parts[0] as string
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first
    parts.shift()
  }
  if (parts.length === 0 || parts.some((part) => !NAME_COMPONENT.test(part))) return null
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library')
  const repository = parts.join('/')
  const normalized = digest ? `${registry}/${repository}@${digest}` : `${registry}/${repository}:${tag}`
  return { registry, repository, tag, digest, normalized }
}

/**
 * `image_name` of a build: `name` or `name:tag`. The namespace comes from the token, so a name with a `/`
 * (a namespace of the client's choosing) or a digest is refused.
 */
export function parseImageName(text: string): { name: string; tag: string } | string {
  const colon = text.indexOf(':')
  const name = colon >= 0 ? text.slice(0, colon) : text
  const tag = colon >= 0 ? text.slice(colon + 1) : 'latest'
  if (name.includes('/')) return 'image_name must not contain "/": the namespace is derived from the token'
  if (!NAME_COMPONENT.test(name)) return `image_name "${text}" is not a valid image name (lowercase letters, digits, ".", "_", "-")`
  if (!TAG.test(tag)) return `image_name "${text}" has an invalid tag`
  return { name, tag }
}

/** Docs: a lowercase path of alphanumerics, `.`, `_`, `-`, `/`; no tag; at most 255 characters. Empty path parts are refused too. */
export function checkCacheKey(text: string): string | null {
  if (text.length === 0) return 'cache_key must not be empty (omit the field for the default)'
  if (text.length > 255) return 'cache_key must be at most 255 characters'
  if (!/^[a-z0-9._/-]+$/.test(text)) return 'cache_key may only contain lowercase letters, digits, ".", "_", "-" and "/" (no tag)'
  if (text.split('/').some((part) => part === '')) return 'cache_key must not have empty path segments'
  return null
}

/** RFC 4648 base32, lowercase, unpadded: the registry namespace of a project (the API documents e.g. `nbswy3dp`). */
export function namespaceOf(projectId: string): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  let bits = 0
  let value = 0
  let out = ''
  for (const byte of Buffer.from(projectId, 'utf8')) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31]
  return out
}
