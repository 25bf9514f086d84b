/**
 * Image references as Docker and contree-cli understand them (protocol notes §7.7), so that
 * `python:3.12-slim` in a workflow means the same image it means to `docker pull`.
 * Pure: no I/O.
 */

export interface ImageReference {
  /** Registry host, with port when given; Docker Hub is always `docker.io`. */
  registry: string
  /** Repository path inside the registry; Docker Hub official images gain `library/`. */
  repository: string
  /** Absent only when the reference pins a digest and names no tag. */
  tag?: string
  /** `sha256:<hex>` when the reference pins one. */
  digest?: string
  /** The text the user wrote, for messages. */
  original: string
}

export const DOCKER_HUB = 'docker.io'
const DOCKER_HUB_API = 'https://registry-1.docker.io'
const DEFAULT_TAG = 'latest'
// Docker's own limit on the full name (host + path); longer names are refused by registries anyway.
const MAX_NAME_LENGTH = 255

// The grammar of github.com/distribution/reference, re-expressed: path components are lowercase
// alphanumerics joined by single separators ('.', '_', '__', or dashes).
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const HOST_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/
const PORT = /^[0-9]{1,5}$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const DOCKER_SCHEME = 'docker://'

/** Thrown for text that is not an image reference; the message quotes it and says what is wrong. */
export class InvalidReferenceError extends Error {
  readonly reference: string
  constructor(reference: string, reason: string) {
    super(`Invalid image reference "${reference}": ${reason}`)
    this.name = 'InvalidReferenceError'
    this.reference = reference
  }
}

export function parseReference(ref: string): ImageReference {
  const original = ref
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(original, reason)
  }
  let rest = ref.trim()
  if (rest === '') fail('it is empty')
  if (rest.startsWith(DOCKER_SCHEME)) rest = rest.slice(DOCKER_SCHEME.length)
  if (/\s/.test(rest)) fail('it contains whitespace')

  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at !== -1) {
    const candidate = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST.test(candidate)) {
      fail(`"${candidate}" is not a digest (expected sha256: followed by 64 lowercase hex digits)`)
    }
    digest = candidate
  }

  // A ':' after the last '/' starts the tag; one before it belongs to a host:port.
  let tag: string | undefined
  const lastSlash = rest.lastIndexOf('/')
  const colon = rest.indexOf(':', lastSlash + 1)
  if (colon !== -1) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) {
      fail(`tag "${tag}" is not valid (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')`)
    }
  }
  if (rest === '') fail('the repository name is missing')

  let registry = DOCKER_HUB
  let path = rest
  const firstSlash = rest.indexOf('/')
  if (firstSlash !== -1) {
    const first = rest.slice(0, firstSlash)
    // Docker's rule: the first component is a host when it has a '.' or a port, is localhost,
    // or has uppercase letters (which a repository path may not).
    if (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()) {
      registry = normaliseHost(first, fail)
      path = rest.slice(firstSlash + 1)
    }
  }
  if (registry === DOCKER_HUB && !path.includes('/')) path = `library/${path}`

  for (const component of path.split('/')) {
    if (component === '') fail('it has an empty path component')
    if (component !== component.toLowerCase()) fail(`repository name "${path}" must be lowercase`)
    if (!PATH_COMPONENT.test(component)) {
      fail(`"${component}" is not a valid path component (lowercase letters, digits, and single '.', '_', '__' or '-' between them)`)
    }
  }
  if (registry.length + 1 + path.length > MAX_NAME_LENGTH) {
    fail(`the name is longer than ${MAX_NAME_LENGTH} characters`)
  }

  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG
  const parsed: ImageReference = { registry, repository: path, original }
  if (tag !== undefined) parsed.tag = tag
  if (digest !== undefined) parsed.digest = digest
  return parsed
}

/**
 * True when the text names its registry: the `docker://` form, or a first path component that is a
 * host by Docker's rule (`ghcr.io/…`, `docker.io/…`, `localhost:5000/…`). A bare `python:3.12` does not.
 */
export function namesRegistry(text: string): boolean {
  const rest = text.trim()
  if (rest.startsWith(DOCKER_SCHEME)) return true
  const firstSlash = rest.indexOf('/')
  if (firstSlash === -1) return false
  const first = rest.slice(0, firstSlash)
  return /[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()
}

/** A registry host as written in an input (`ghcr.io`, `localhost:5000`), in the spelling references use. */
export function parseRegistryHost(text: string): string {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(text, reason)
  }
  const host = text.trim().replace(/^https?:\/\//, '').replace(/\/+$/, '')
  if (host === '' || host.includes('/')) fail('expected a registry host such as ghcr.io or localhost:5000')
  return normaliseHost(host, fail)
}

function normaliseHost(host: string, fail: (reason: string) => never): string {
  let name = host
  let port: string | undefined
  if (host.startsWith('[')) {
    // IPv6 literal, e.g. [::1]:5000.
    const end = host.indexOf(']')
    if (end === -1 || !/^[0-9a-fA-F:.]+$/.test(host.slice(1, end))) fail(`"${host}" is not a valid registry host`)
    name = host.slice(0, end + 1)
    const after = host.slice(end + 1)
    if (after !== '') {
      if (!after.startsWith(':')) fail(`"${host}" is not a valid registry host`)
      port = after.slice(1)
    }
  } else {
    const colon = host.indexOf(':')
    if (colon !== -1) {
      name = host.slice(0, colon)
      port = host.slice(colon + 1)
    }
    if (!name.split('.').every((label) => HOST_LABEL.test(label))) fail(`"${host}" is not a valid registry host`)
  }
  if (port !== undefined && (!PORT.test(port) || Number(port) > 65535)) {
    fail(`"${port}" is not a valid port in registry host "${host}"`)
  }
  // Host names are case-insensitive; compare and cache them in one spelling.
  name = name.toLowerCase()
  if (name === 'index.docker.io' || name === 'registry-1.docker.io') name = DOCKER_HUB
  return port === undefined ? name : `${name}:${port}`
}

/** The canonical text of a parsed reference, e.g. `docker.io/library/python:3.12-slim`. */
export function formatReference(ref: ImageReference): string {
  const name = `${ref.registry}/${ref.repository}`
  // A digest pins the content; the tag beside it would only be decoration the registry ignores.
  if (ref.digest !== undefined) return `${name}@${ref.digest}`
  return `${name}:${ref.tag ?? DEFAULT_TAG}`
}

/** The URL ConTree's `POST /v1/images/import` expects. Accepts text or an already parsed reference. */
export function toContreeImportUrl(ref: string | ImageReference): string {
  const parsed = typeof ref === 'string' ? parseReference(ref) : ref
  return `${DOCKER_SCHEME}${formatReference(parsed)}`
}

/** Base URL of the registry's distribution API (without the trailing `/v2/`). */
export function registryApiBase(ref: string | ImageReference): string {
  const parsed = typeof ref === 'string' ? parseReference(ref) : ref
  if (parsed.registry === DOCKER_HUB) return DOCKER_HUB_API
  // Loopback registries (CI services, test registries) speak plain HTTP, as Docker allows for them.
  const scheme = isLoopbackHost(parsed.registry) ? 'http' : 'https'
  return `${scheme}://${parsed.registry}`
}

export function isLoopbackHost(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.replace(/:\d+$/, '')
  return host === 'localhost' || host.endsWith('.localhost') || host === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(host)
}

export function isContreeUuid(s: string): boolean {
  return UUID.test(s.trim())
}

/**
 * True when `s` should be treated as a registry image reference: not a ConTree image UUID, not the
 * `tag:NAME` form (both resolved on the ConTree side), and parseable as a reference.
 */
export function looksLikeRegistryReference(s: string): boolean {
  const text = s.trim()
  if (isContreeUuid(text)) return false
  if (text.startsWith('tag:')) return false
  try {
    parseReference(text)
    return true
  } catch {
    return false
  }
}
