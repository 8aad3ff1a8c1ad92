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

# The toolchain is built once per machine and requirements, in a cache keyed by their hash (a venv
# cannot move: its scripts name their interpreter by absolute path), and each checkout's .venv links to
# it: a clean clone is ready in seconds, not minutes. Only .venv/collections is the checkout's own.
# BLUEMIND_MIGRATION_VENV_CACHE=0 builds .venv in the checkout as before.
venv_cache_root=${BLUEMIND_MIGRATION_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bluemind-migration}

# pip of the venv in $1, without the noise of this machine's absent local index folders
pipq() { local dir=$1; shift; "$dir/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

build_venv() {  # build_venv DIR HASH: the pinned toolchain and BlueMind's clients in DIR
  local dir=$1 want=$2
  echo "creating the toolchain's venv in $dir (a few minutes the first time)"
  rm -rf "$dir"
  python3 -m venv "$dir"
  pipq "$dir" install -q --upgrade pip
  pipq "$dir" install -q -r "$top/requirements-dev.txt"
  # netbluemind4 and netbluemind5 both install the package `netbluemind`: keep each in its own folder.
  pipq "$dir" install -q --no-deps --upgrade --target "$dir/netbluemind4" netbluemind4==4.9.3884
  pipq "$dir" install -q --no-deps --upgrade --target "$dir/netbluemind5" netbluemind5==5.7.3268
  echo "$want" >"$dir/.stamp"
}

venv() {
  local stamp="$top/.venv/.stamp" want cache entry
  want=$(cat "$top/requirements-dev.txt" "$0" | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then link_collection; return 0; fi
  rm -rf "$top/.venv"
  if [ "${BLUEMIND_MIGRATION_VENV_CACHE:-1}" = 0 ]; then
    build_venv "$top/.venv" "$want"
  else
    cache=$venv_cache_root/venv-$want
    mkdir -p "$venv_cache_root"
    # One build at a time per hash (two checkouts set up at once); a build cut short has no stamp.
    exec 9>"$cache.lock"
    flock 9
    if [ ! -f "$cache/.stamp" ] || [ "$(cat "$cache/.stamp")" != "$want" ]; then
      build_venv "$cache" "$want"
    fi
    flock -u 9
    mkdir -p "$top/.venv"
    for entry in "$cache"/*; do
      ln -sfn "$entry" "$top/.venv/${entry##*/}"
    done
    echo "using the toolchain's venv $cache (.venv links to it)"
    echo "$want" >"$stamp"
  fi
  link_collection
}

case "${1:-}" in
  system) system ;;
  venv) venv ;;
  *) die "usage: bootstrap.sh system|venv" ;;
esac
