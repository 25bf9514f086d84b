#!/usr/bin/env bash
# Prepares a Debian/Ubuntu machine for the test emulators (test/emulator/contree/README.md, "Sandbox"):
# - docker-registry: the real OCI registry the import tests pull from;
# - busybox-static: the userland of the test images (statically linked, so it runs in any image);
# - uidmap (newuidmap/newgidmap) and a range of 65536 subordinate uids/gids for the user, so an
#   ordinary user's emulator can map every id of an image into its user namespace;
# - on Ubuntu 23.10+ (GitHub's ubuntu-24.04 runners), AppArmor's restriction of unprivileged user
#   namespaces switched off: it denies the mounts the sandbox makes inside its namespace.
# Idempotent; uses sudo when not root. Usage: .ci/sandbox-prereqs.sh [user]
set -euo pipefail
user="${1:-$(id -un)}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for package in docker-registry busybox-static uidmap; do
  installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing ${missing[*]} for the test emulators ..."
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$(id -u "$user")" != 0 ]; then
  for kind in uid gid; do
    file="/etc/sub$kind"
    # A range of at least 65536 ids, or the user namespace cannot hold every id an image may use.
    if ! awk -F: -v user="$user" '$1 == user && $3 >= 65536 { found = 1 } END { exit !found }' "$file" 2>/dev/null; then
      start=$(awk -F: 'BEGIN { end = 100000 } $2 + $3 > end { end = $2 + $3 } END { print end }' "$file" 2>/dev/null || echo 100000)
      echo "Giving $user the subordinate ${kind}s $start-$((start + 65535)) ..."
      as_root usermod "--add-sub${kind}s" "$start-$((start + 65535))" "$user"
    fi
  done
  restriction=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
  if [ -r "$restriction" ] && [ "$(cat "$restriction")" = 1 ]; then
    echo "Allowing unprivileged user namespaces to mount (kernel.apparmor_restrict_unprivileged_userns=0) ..."
    as_root sysctl -qw kernel.apparmor_restrict_unprivileged_userns=0
  fi
fi
