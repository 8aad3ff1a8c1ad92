#!/usr/bin/env bash
# Make a fresh Debian 12 machine ready for the lab and the tests. Idempotent: a second run only checks.
#   bootstrap.sh system   apt packages (docker.io, debootstrap, rsync, openssh-client, openssl, shellcheck, chromium)
#                         + a running dockerd
#   bootstrap.sh venv     .venv with the pinned toolchain (requirements-dev.txt) and BlueMind's clients
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "ERROR: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "$1 needs root (apt-get, dockerd, debootstrap): run it as root or with sudo"
}

system() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v rsync >/dev/null || missing+=(rsync)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v shellcheck >/dev/null || missing+=(shellcheck)   # ansible-test sanity checks shell scripts with it
  # tests/unit/test_report_render.py opens the HTML report in it, headless (with 128 libraries: ~150 MB download, ~530 MB installed, ~80 s)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    need_root "installing ${missing[*]}"
    echo "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed: check the Debian archive is reachable and /var has room"
  fi
  if ! docker info >/dev/null 2>&1; then
    need_root "starting dockerd"
    echo "no Docker engine answers: starting dockerd in the background (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -n 15 /var/log/dockerd.log >&2; die "dockerd did not start within 60 s (log above)"; }
  fi
}

# ansible finds this checkout as bluemind.migration through ansible.cfg's collections_path.
link_collection() {
  mkdir -p "$top/.venv/collections/ansible_collections/bluemind"
  ln -sfn ../../../.. "$top/.venv/collections/ansible_collections/bluemind/migration"
}

# pip, without the noise of this machine's absent local index folders
pipq() { "$top/.venv/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

venv() {
  local stamp="$top/.venv/.stamp" want
  link_collection
  want=$(cat "$top/requirements-dev.txt" "$0" | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  echo "creating .venv with the pinned toolchain (a few minutes the first time)"
  python3 -m venv "$top/.venv"
  pipq install -q --upgrade pip
  pipq install -q -r "$top/requirements-dev.txt"
  # netbluemind4 and netbluemind5 both install the package `netbluemind`: keep each in its own folder.
  pipq install -q --no-deps --upgrade --target "$top/.venv/netbluemind4" netbluemind4==4.9.3884
  pipq install -q --no-deps --upgrade --target "$top/.venv/netbluemind5" netbluemind5==5.7.3268
  echo "$want" >"$stamp"
  link_collection
}

case "${1:-}" in
  system) system ;;
  venv) venv ;;
  *) die "usage: bootstrap.sh system|venv" ;;
esac
