/**
 * The Together section of the inputs: defaults from the SDK's environment variables, the builder's
 * address derived as the SDK does (and an error, never the API host, when it cannot be), and every
 * refusal naming its input.
 */
import { describe, expect, it } from 'vitest'
import { parseTogetherInputs, type TogetherInputName } from '../../src/providers/together/inputs.ts'

const parse = (raw: Partial<Record<TogetherInputName, string>>, env: NodeJS.ProcessEnv = {}) => parseTogetherInputs({ token: 'k', ...raw }, env)

describe('Together inputs', () => {
  it('defaults to the SDK\'s service, 1 CPU and 2 GiB, amd64, not kept alive', () => {
    expect(parse({}, { GITHUB_REPOSITORY: 'o/r', GITHUB_SHA: 'abc' })).toEqual({
      apiUrl: 'https://api.bartender.codesandbox.io',
      token: 'k',
      builderUrl: 'https://builder.codesandbox.io',
      keepAlive: false,
      architecture: 'amd64',
      cpu: 1,
      memoryBytes: 2 * 1024 ** 3,
      repository: 'o/r',
      commit: 'abc',
    })
  })

  it('reads TOGETHER_API_KEY, TOGETHER_BASE_URL and TOGETHER_REMOTE_ARCHITECTURE when the inputs are unset', () => {
    const settings = parseTogetherInputs({}, { TOGETHER_API_KEY: 'env-key', TOGETHER_BASE_URL: 'https://api.bartender.example.com/v1/', TOGETHER_REMOTE_ARCHITECTURE: 'arm64' })
    expect(settings).toMatchObject({ token: 'env-key', apiUrl: 'https://api.bartender.example.com', builderUrl: 'https://builder.example.com', architecture: 'arm64' })
  })

  it('refuses an API address it cannot derive the builder from, instead of using the API host', () => {
    expect(() => parse({ 'api-url': 'http://127.0.0.1:8080' })).toThrow(/Input 'builder-url': is required: .*"http:\/\/127\.0\.0\.1:8080"/)
    expect(parse({ 'api-url': 'http://127.0.0.1:8080', 'builder-url': 'http://127.0.0.1:9090/' }).builderUrl).toBe('http://127.0.0.1:9090')
  })

  it.each<[string, Partial<Record<TogetherInputName, string>>, RegExp]>([
    ['no token', { token: '' }, /Input 'token': is required/],
    ['architecture', { architecture: 'x86_64' }, /Input 'architecture': "x86_64" .* amd64 or arm64/],
    ['cpu out of range', { cpu: '32' }, /Input 'cpu': "32"/],
    ['memory unit', { memory: '4 bananas' }, /Input 'memory': "4 bananas"/],
    ['memory per CPU', { cpu: '4', memory: '2GiB' }, /Input 'memory': "2GiB" does not fit cpu 4/],
    ['ttl', { ttl: '-5' }, /Input 'ttl': "-5"/],
    ['cache key', { 'cache-key': 'My/Key:latest' }, /Input 'cache-key': "My\/Key:latest"/],
    ['alias', { alias: 'has space' }, /Input 'alias'/],
    ['keep-alive', { 'keep-alive': 'yes' }, /Input 'keep-alive': expected true or false/],
    ['api-url', { 'api-url': 'ftp://x' }, /Input 'api-url': "ftp:\/\/x" must use http or https/],
  ])('refuses a bad %s, naming the input', (_name, raw, message) => {
    expect(() => parse(raw)).toThrow(message)
  })

  it('reads sizes and lifetimes with units, and moves the default memory into what the CPU count requires', () => {
    expect(parse({ cpu: '2', memory: '4GiB', ttl: '2h', 'snapshot-ttl': '7d', 'keep-alive': 'true' })).toMatchObject({
      cpu: 2,
      memoryBytes: 4 * 1024 ** 3,
      ttlSeconds: 7200,
      snapshotTtlSeconds: 7 * 86_400,
      keepAlive: true,
    })
    expect(parse({ cpu: '8' }).memoryBytes).toBe(8e9)
    expect(parse({ cpu: '0.1' }).memoryBytes).toBe(0.8e9)
  })
})
