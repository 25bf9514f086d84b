/**
 * Real, small test images: deterministic root trees built from Debian's statically linked busybox
 * (package busybox-static), with the accounts, modes, owners and OCI configs of the images they stand
 * in for. The ConTree emulator seeds them (its `busybox:latest` is `base`), and registry.ts pushes
 * them with their configs, so a sandboxed command finds exactly what the image holds: no host tools.
 *
 * The catalogue (TEST_IMAGES) is meant to grow: add an entry with its accounts, extra files and
 * config; testImageFiles/testImageTar/testImageConfig and the seed/push helpers pick it up. See
 * test/emulator/contree/README.md ("Test images").
 */
import { execFileSync } from 'node:child_process'
import { accessSync, constants, readFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { STANDARD_PATH, type ImageRuntimeConfig, type Platform } from './oci-image.ts'
import { buildTar, type TarFiles } from './tar-writer.ts'

/** The platform the emulated service runs, and so the one its imports pick from an index. */
export const SERVICE_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' }

const BUSYBOX_HINT =
  "A statically linked busybox is needed for the test images; install Debian's busybox-static " +
  '(sudo apt-get install -y busybox-static)'

export interface Account {
  name: string
  uid: number
  /** Primary group id; the group is created unless another account or `groups` already has it. */
  gid: number
  group: string
  home: string
  /** Mode of the home directory (owned by the account); default 0755. */
  homeMode?: number
  shell?: string
}

export interface TestImageSpec {
  description: string
  /** Whether /bin/busybox and its applet links are in the image (false: no shell, no tools at all). */
  busybox: boolean
  /** Applet links left out (the busybox binary itself stays). */
  withoutApplets?: readonly string[]
  /** Accounts besides root (0) and nobody (65534). */
  accounts: readonly Account[]
  /** Extra groups (name → gid) besides those the accounts bring. */
  groups?: Readonly<Record<string, number>>
  /** Extra entries on top of the skeleton (tar-writer shapes: content, mode, uid, gid, symlinks). */
  files?: TarFiles
  /** The OCI image config's `config` (Env, WorkingDir, User, Cmd …), exactly as pushed. */
  config: ImageRuntimeConfig
}

const LOGIN_SHELL = '/bin/sh'
const NO_LOGIN = '/sbin/nologin'

export const TEST_IMAGES = {
  base: {
    description: 'busybox with every applet, like docker.io/library/busybox; one non-root user "app" (1000:1000)',
    busybox: true,
    accounts: [{ name: 'app', uid: 1000, gid: 1000, group: 'app', home: '/home/app' }],
    config: { Env: [`PATH=${STANDARD_PATH}`], Cmd: ['sh'] },
  },
  golang: {
    description: 'like golang: GOPATH /go (1777) as WORKDIR, and `go` only reachable through the image PATH',
    busybox: true,
    accounts: [{ name: 'app', uid: 1000, gid: 1000, group: 'app', home: '/home/app' }],
    files: {
      'go/': { mode: 0o1777 },
      'go/bin/': { mode: 0o1777 },
      'go/src/': { mode: 0o1777 },
      'usr/local/go/bin/go': {
        mode: 0o755,
        content: [
          '#!/bin/sh',
          '# Stand-in for the Go tool: it lives where the golang image keeps it, off the standard PATH.',
          'case "$1" in',
          '  version) echo "go version go1.22.5 linux/amd64" ;;',
          '  env) echo "GOPATH=\'$GOPATH\'" ;;',
          '  *) echo "go: the test image only knows \'go version\' and \'go env\'" >&2; exit 2 ;;',
          'esac',
          '',
        ].join('\n'),
      },
    },
    config: {
      Env: [`PATH=/go/bin:/usr/local/go/bin:${STANDARD_PATH}`, 'GOLANG_VERSION=1.22.5', 'GOTOOLCHAIN=local', 'GOPATH=/go'],
      Cmd: ['sh'],
      WorkingDir: '/go',
    },
  },
  node: {
    description:
      'like node: user node (1000:1000, home /home/node), no WORKDIR, no USER, and no su/setpriv/login: ' +
      "another user's command must be run through the spawn's uid/gid",
    busybox: true,
    withoutApplets: ['su', 'setpriv', 'login', 'sulogin'],
    accounts: [{ name: 'node', uid: 1000, gid: 1000, group: 'node', home: '/home/node' }],
    files: {
      'usr/local/bin/node': {
        mode: 0o755,
        content: '#!/bin/sh\n# Stand-in for node: it only answers --version.\ncase "$1" in --version|-v) echo v22.12.0 ;; *) echo "node: the test image only knows --version" >&2; exit 9 ;; esac\n',
      },
    },
    config: {
      Env: [`PATH=${STANDARD_PATH}`, 'NODE_VERSION=22.12.0', 'YARN_VERSION=1.22.22'],
      Cmd: ['node'],
    },
  },
  jupyter: {
    description:
      'like jupyter/base-notebook: jovyan (1000) in group users (100), `USER 1000` (numeric, as the ' +
      'docker-stacks Dockerfile writes USER ${NB_UID}), WORKDIR /home/jovyan, conda dir owned by jovyan',
    busybox: true,
    accounts: [{ name: 'jovyan', uid: 1000, gid: 100, group: 'users', home: '/home/jovyan' }],
    files: {
      'opt/conda/': { mode: 0o775, uid: 1000, gid: 100 },
      'opt/conda/bin/': { mode: 0o775, uid: 1000, gid: 100 },
    },
    config: {
      Env: [
        `PATH=/opt/conda/bin:${STANDARD_PATH}`,
        'CONDA_DIR=/opt/conda',
        'SHELL=/bin/sh',
        'NB_USER=jovyan',
        'NB_UID=1000',
        'NB_GID=100',
        'LANG=C.UTF-8',
        'HOME=/home/jovyan',
      ],
      Cmd: ['start-notebook.py'],
      WorkingDir: '/home/jovyan',
      User: '1000',
    },
  },
  distroless: {
    description:
      'like gcr.io/distroless/static:nonroot: no shell and no busybox at all; nonroot (65532:65532), ' +
      'config User 65532 and WorkingDir /home/nonroot (the :nonroot variant)',
    busybox: false,
    accounts: [{ name: 'nonroot', uid: 65532, gid: 65532, group: 'nonroot', home: '/home/nonroot', homeMode: 0o700, shell: NO_LOGIN }],
    groups: { tty: 5, staff: 50 },
    files: {
      'etc/os-release': 'PRETTY_NAME="Distroless"\nNAME="Debian GNU/Linux"\nID="debian"\nHOME_URL="https://github.com/GoogleContainerTools/distroless"\n',
      'etc/ssl/certs/ca-certificates.crt': '',
    },
    config: {
      Env: [`PATH=${STANDARD_PATH}`, 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'],
      User: '65532',
      WorkingDir: '/home/nonroot',
    },
  },
} satisfies Record<string, TestImageSpec>

export type TestImageName = keyof typeof TEST_IMAGES

let busyboxCache: { bytes: Uint8Array; applets: string[] } | undefined

/** The host's static busybox and its applet paths (`busybox --list-full`), read once per process. */
export function staticBusybox(): { bytes: Uint8Array; applets: string[] } {
  if (busyboxCache) return busyboxCache
  const path = findBusybox()
  const bytes = new Uint8Array(readFileSync(path))
  if (isDynamicElf(bytes)) throw new Error(`${path} is dynamically linked and cannot run inside an image. ${BUSYBOX_HINT}`)
  const applets = execFileSync(path, ['--list-full'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && line !== 'bin/busybox')
  busyboxCache = { bytes, applets }
  return busyboxCache
}

function findBusybox(): string {
  const candidates = ['/bin/busybox', '/usr/bin/busybox', ...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'busybox'))]
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  throw new Error(`busybox is not installed. ${BUSYBOX_HINT}`)
}

/** True when an ELF executable asks for a program interpreter (PT_INTERP), i.e. is not static. */
function isDynamicElf(bytes: Uint8Array): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const is64 = bytes[4] === 2
  const little = bytes[5] === 1
  const phoff = is64 ? Number(view.getBigUint64(0x20, little)) : view.getUint32(0x1c, little)
  const phentsize = view.getUint16(is64 ? 0x36 : 0x2a, little)
  const phnum = view.getUint16(is64 ? 0x38 : 0x2c, little)
  const PT_INTERP = 3
  for (let i = 0; i < phnum; i++) if (view.getUint32(phoff + i * phentsize, little) === PT_INTERP) return true
  return false
}

/** The whole root tree of a catalogue image, as tar-writer entries. */
export function testImageFiles(name: TestImageName): TarFiles {
  const spec: TestImageSpec = TEST_IMAGES[name]
  const shell = spec.busybox ? LOGIN_SHELL : NO_LOGIN
  const files: TarFiles = {
    'etc/': '',
    'dev/': '',
    'proc/': '',
    'sys/': '',
    'home/': '',
    'var/': '',
    'root/': { mode: 0o700 },
    'tmp/': { mode: 0o1777 },
  }

  const passwd = [`root:x:0:0:root:/root:${shell}`]
  const groups = new Map<number, string>([[0, 'root']])
  for (const [group, gid] of Object.entries(spec.groups ?? {})) groups.set(gid, group)
  for (const account of spec.accounts) {
    passwd.push(`${account.name}:x:${account.uid}:${account.gid}:${account.name}:${account.home}:${account.shell ?? shell}`)
    if (!groups.has(account.gid)) groups.set(account.gid, account.group)
    files[`${account.home.replace(/^\//, '')}/`] = { mode: account.homeMode ?? 0o755, uid: account.uid, gid: account.gid }
  }
  passwd.push(`nobody:x:65534:65534:nobody:/nonexistent:${NO_LOGIN}`)
  groups.set(65534, 'nogroup')
  files['etc/passwd'] = passwd.join('\n') + '\n'
  files['etc/group'] = [...groups.entries()]
    .sort(([a], [b]) => a - b)
    .map(([gid, group]) => `${group}:x:${gid}:`)
    .join('\n') + '\n'

  if (spec.busybox) {
    const busybox = staticBusybox()
    files['etc/hostname'] = 'contree\n'
    files['bin/busybox'] = { content: busybox.bytes, mode: 0o755 }
    const without = new Set(spec.withoutApplets ?? [])
    for (const applet of busybox.applets) {
      if (without.has(applet.slice(applet.lastIndexOf('/') + 1))) continue
      files[applet] = { type: 'symlink', target: '/bin/busybox' }
    }
  }
  return { ...files, ...spec.files }
}

const tarCache = new Map<TestImageName, Uint8Array>()

/** The image tree as one uncompressed tar (built once per process). */
export function testImageTar(name: TestImageName): Uint8Array {
  let tar = tarCache.get(name)
  if (!tar) {
    tar = buildTar(testImageFiles(name))
    tarCache.set(name, tar)
  }
  return tar
}

export function testImageConfig(name: TestImageName): ImageRuntimeConfig {
  return structuredClone(TEST_IMAGES[name].config)
}

/** A one-file layer saying which platform an image was built for (multi-platform tests). */
export function platformMarker(platform: Platform): TarFiles {
  const text = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}\n`
  return { 'etc/platform': text }
}
