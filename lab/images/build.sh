#!/usr/bin/env bash
# Build (or reuse) the lab host images. Tags carry a hash of the whole recipe (base script, Dockerfile,
# simulator), so a cached image is reused until the recipe changes.
# usage: build.sh origin|target [4|5]  -> prints the tag
# The second argument is the BlueMind flavour (default 4). 4: origin Debian 11, target Debian 12.
# 5: origin Debian 12, target Debian 13, and Dockerfile.bm5 appended to the same recipe (5.x layout:
# no Cyrus, zstd bodies, Keycloak stand-in). The 4 recipe and its hash input are those of before.
set -euo pipefail
role=${1:?usage: build.sh origin|target [4|5]}
flavour=${2:-${BMLAB_BLUEMIND:-4}}
here=$(cd "$(dirname "$0")" && pwd)
lab=$(cd "$here/.." && pwd)
case "$flavour/$role" in
  4/origin) suite=bullseye cyrus_uid=301 es_uid=302 ;;   # Debian 11, PostgreSQL 13
  4/target) suite=bookworm cyrus_uid=402 es_uid=301 ;;   # Debian 12, PostgreSQL 15 (uids swapped/shifted)
  5/origin) suite=bookworm cyrus_uid=301 es_uid=302 ;;   # Debian 12, PostgreSQL 15
  5/target) suite=trixie cyrus_uid=402 es_uid=301 ;;     # Debian 13, PostgreSQL 17 (uids swapped/shifted)
  4/*|5/*) echo "ERROR: unknown lab host '$role' (origin or target)" >&2; exit 2 ;;
  *) echo "ERROR: unknown BlueMind flavour '$flavour' (4 or 5)" >&2; exit 2 ;;
esac
base=$("$here/base.sh" "$suite")
hash=$( { echo "$base $role $cyrus_uid $es_uid"; cat "$here/Dockerfile";
          if [ "$flavour" = 5 ]; then echo "bluemind 5"; cat "$here/Dockerfile.bm5"; fi
          (cd "$lab" && find sim -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum); } \
        | sha256sum | cut -c1-12)
flavour5_label=""
if [ "$flavour" = 5 ]; then tag="bmlab5-$role:$hash" flavour5_label=bmlab.bluemind=5; else tag="bmlab-$role:$hash"; fi
if docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; exit 0; fi
echo "building $tag" >&2
ctx=$(mktemp -d /var/tmp/bmlab-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
if [ "$flavour" = 5 ]; then cat "$here/Dockerfile.bm5" >>"$ctx/Dockerfile"; fi
rsync -a --exclude __pycache__ --exclude '*.pyc' "$lab/sim/" "$ctx/sim/"
if ! DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base" --build-arg CYRUS_UID="$cyrus_uid" \
      --build-arg ES_UID="$es_uid" --label bmlab.role="$role" ${flavour5_label:+--label "$flavour5_label"} \
      -t "$tag" "$ctx" >"$ctx/build.log" 2>&1; then
  tail -n 30 "$ctx/build.log" >&2
  echo "ERROR: docker build of the $role image failed (log above)" >&2
  exit 1
fi
echo "$tag"
