/**
 * A loopback proxy that puts registry authentication in front of a registry that has none, so the
 * flows of public registries can be tested for real:
 * - `bearer` (default): 401 + `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, tokens from
 *   `GET /token` (anonymous, or Basic credentials when configured), then `Authorization: Bearer`;
 * - `basic`: 401 + `WWW-Authenticate: Basic realm=…`, then `Authorization: Basic` on every request.
 * Authorised requests are streamed to the upstream registry unchanged (headers such as
 * Docker-Content-Digest come back as they are).
 */
import { randomBytes } from 'node:crypto'
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export const AUTH_PROXY_SERVICE = 'test-registry'

export interface RegistryAuthProxyOptions {
  username?: string
  password?: string
  scheme?: 'bearer' | 'basic'
}

export interface RegistryAuthProxy {
  url: string
  host: string
  /** How many times `/token` was asked, successfully or not. */
  readonly tokenRequests: number
  /** Requests (token or registry) that carried Basic credentials, right or wrong. */
  readonly credentialedRequests: number
  /** Tokens issued so far (tests may assert that none leaks into messages). */
  readonly issuedTokens: readonly string[]
  close(): Promise<void>
}

export async function startRegistryAuthProxy(upstreamUrl: string, opts: RegistryAuthProxyOptions = {}): Promise<RegistryAuthProxy> {
  const upstream = new URL(upstreamUrl)
  const scheme = opts.scheme ?? 'bearer'
  const tokens = new Set<string>()
  const issued: string[] = []
  let tokenRequests = 0
  let credentialedRequests = 0
  let base = ''

  const credentialsMatch = (header: string | undefined): boolean => {
    if (/^Basic\s/i.test(header ?? '')) credentialedRequests++
    if (opts.username === undefined) return false
    const match = /^Basic\s+(\S+)$/i.exec(header ?? '')
    if (match === null) return false
    return Buffer.from(match[1] ?? '', 'base64').toString('utf8') === `${opts.username}:${opts.password ?? ''}`
  }

  const serveToken = (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    tokenRequests++
    if (url.searchParams.get('service') !== AUTH_PROXY_SERVICE) {
      return json(res, 400, { errors: [{ code: 'UNSUPPORTED', message: 'unknown service' }] })
    }
    if (opts.username !== undefined && !credentialsMatch(req.headers.authorization)) {
      res.setHeader('www-authenticate', `Basic realm="${AUTH_PROXY_SERVICE}"`)
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] })
    }
    const token = randomBytes(16).toString('hex')
    tokens.add(token)
    issued.push(token)
    json(res, 200, { token, access_token: token, expires_in: 300 })
  }

  const challenge = (res: ServerResponse, path: string, method: string): void => {
    if (scheme === 'basic') {
      res.setHeader('www-authenticate', `Basic realm="${AUTH_PROXY_SERVICE}"`)
    } else {
      const repository = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(path)?.[1]
      const actions = method === 'GET' || method === 'HEAD' ? 'pull' : 'pull,push'
      const scope = repository === undefined ? '' : `,scope="repository:${repository}:${actions}"`
      res.setHeader('www-authenticate', `Bearer realm="${base}/token",service="${AUTH_PROXY_SERVICE}"${scope}`)
    }
    json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] })
  }

  const authorised = (header: string | undefined): boolean => {
    if (scheme === 'basic') return credentialsMatch(header)
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '')
    return match !== null && tokens.has(match[1] ?? '')
  }

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const headers = { ...req.headers }
    delete headers.authorization
    // Upstream builds absolute Location URLs from Host; make them point back at the proxy.
    headers.host = new URL(base).host
    const upstreamReq = httpRequest(
      { hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers)
        upstreamRes.pipe(res)
      },
    )
    upstreamReq.on('error', (error) => {
      if (!res.headersSent) json(res, 502, { errors: [{ code: 'UPSTREAM', message: error.message }] })
      else res.destroy(error)
    })
    req.pipe(upstreamReq)
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', base)
    if (url.pathname === '/token' && scheme === 'bearer') return serveToken(req, res, url)
    if (scheme === 'bearer' && /^Basic\s/i.test(req.headers.authorization ?? '')) credentialedRequests++
    if (!url.pathname.startsWith('/v2/') && url.pathname !== '/v2') return json(res, 404, { errors: [{ code: 'NOT_FOUND' }] })
    if (!authorised(req.headers.authorization)) {
      // Drain the body of a refused upload so the connection stays usable.
      req.resume()
      return challenge(res, url.pathname, req.method ?? 'GET')
    }
    forward(req, res)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const host = `127.0.0.1:${port}`
  base = `http://${host}`

  return {
    url: base,
    host,
    get tokenRequests() {
      return tokenRequests
    },
    get credentialedRequests() {
      return credentialedRequests
    },
    get issuedTokens() {
      return issued
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}
