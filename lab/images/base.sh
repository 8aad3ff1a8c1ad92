#!/usr/bin/env bash
# Build (or reuse) a minimal Debian base image from a debootstrap rootfs, imported under a local tag.
# usage: base.sh <suite>   -> prints the tag on stdout
# The tag carries a hash of this recipe, so the image is rebuilt only when the recipe changes.
set -euo pipefail
suite=${1:?usage: base.sh bullseye|bookworm|trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Packages that must be in the rootfs before Dockerfiles run (systemd as PID 1, apt over https not needed).
include=systemd,systemd-sysv,dbus,ca-certificates,python3,iproute2,procps
hash=$( { cat "$0"; echo "$suite $mirror $include"; } | sha256sum | cut -c1-12)
tag="bmlab-base:${suite}-${hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"; exit 0
fi
work=$(mktemp -d /var/tmp/bmlab-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "building $tag with debootstrap (about a minute)" >&2
if ! debootstrap --variant=minbase --include="$include" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  echo "ERROR: debootstrap $suite failed (log above): check that $mirror is reachable and the disk has room" >&2
  exit 1
fi
# apt in the image must not keep caches; the Dockerfile installs the rest.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar -C "$work/rootfs" -c . | docker import \
  -c 'ENV container=docker' -c 'CMD ["/lib/systemd/systemd"]' - "$tag" >/dev/null
echo "$tag"
