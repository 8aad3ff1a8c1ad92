#!/usr/bin/env bash
# Build (or reuse) the lab host images. Tags carry a hash of the whole recipe (base script, Dockerfile,
# simulator), so a cached image is reused until the recipe changes.
# usage: build.sh origin|target  -> prints the tag
set -euo pipefail
role=${1:?usage: build.sh origin|target}
here=$(cd "$(dirname "$0")" && pwd)
lab=$(cd "$here/.." && pwd)
case "$role" in
  origin) suite=bullseye cyrus_uid=301 es_uid=302 ;;   # Debian 11, PostgreSQL 13
  target) suite=bookworm cyrus_uid=402 es_uid=301 ;;   # Debian 12, PostgreSQL 15 (uids swapped/shifted)
  *) echo "ERROR: unknown lab host '$role' (origin or target)" >&2; exit 2 ;;
esac
base=$("$here/base.sh" "$suite")
hash=$( { echo "$base $role $cyrus_uid $es_uid"; cat "$here/Dockerfile";
          (cd "$lab" && find sim -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum); } \
        | sha256sum | cut -c1-12)
tag="bmlab-$role:$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; exit 0; fi
echo "building $tag" >&2
ctx=$(mktemp -d /var/tmp/bmlab-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
rsync -a --exclude __pycache__ --exclude '*.pyc' "$lab/sim/" "$ctx/sim/"
if ! DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base" --build-arg CYRUS_UID="$cyrus_uid" \
      --build-arg ES_UID="$es_uid" --label bmlab.role="$role" -t "$tag" "$ctx" >"$ctx/build.log" 2>&1; then
  tail -n 30 "$ctx/build.log" >&2
  echo "ERROR: docker build of the $role image failed (log above)" >&2
  exit 1
fi
echo "$tag"
