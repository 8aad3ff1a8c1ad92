#!/usr/bin/env bash
# The collection as users get it: build the tarball (galaxy.yml's build_ignore applies), install it
# into an empty collections path with its declared dependencies (resolved offline, from the
# collections the `ansible` package ships), then check ansible-doc against that installed copy.
# Prints nothing but failures and a last line; the installed path is .cache/installed/collections.
# molecule/default converges from it (its dependency step runs this script).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/.venv/bin
work=$top/.cache/installed
rm -rf "$work" && mkdir -p "$work/build" "$work/collections"
# Not the checkout's ansible.cfg: its collections_path holds the checkout itself.
printf '[defaults]\n' > "$work/ansible.cfg"
export ANSIBLE_CONFIG=$work/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$work/collections ANSIBLE_NOCOLOR=1

"$bin/ansible-galaxy" collection build --output-path "$work/build" "$top" > "$work/build.log"
tarball=$(ls "$work"/build/bluemind-migration-*.tar.gz)
"$bin/ansible-galaxy" collection install --offline "$tarball" -p "$work/collections" > "$work/install.log"
installed=$work/collections/ansible_collections/bluemind/migration
if [ ! -f "$installed/MANIFEST.json" ] || [ -L "$installed" ]; then
  echo "install-built: $tarball did not install" >&2; exit 1
fi
for leftover in tests lab molecule bench .git; do
  test ! -e "$installed/$leftover" || { echo "install-built: the tarball carries $leftover (galaxy.yml build_ignore)" >&2; exit 1; }
done

# Every module, filter and role of the checkout is documented from the installed copy.
fail=0
for kind in module filter; do
  dir=$top/plugins/${kind}s; [ "$kind" = filter ] && dir=$top/plugins/filter
  listed=$("$bin/ansible-doc" -t "$kind" -l bluemind.migration 2>/dev/null | awk '{print $1}')
  for file in "$dir"/*.py; do
    name=$(basename "$file" .py); [ "$name" = __init__ ] && continue
    if [ "$kind" = filter ]; then
      names=$(grep -Eo '^  name: [a-z_]+' "$file" | awk '{print $2}' || true); [ -n "$names" ] || continue
    else names=$name; fi
    for n in $names; do
      if ! grep -qx "bluemind.migration.$n" <<<"$listed"; then echo "install-built: ansible-doc -t $kind lacks bluemind.migration.$n" >&2; fail=1; continue; fi
      "$bin/ansible-doc" -t "$kind" "bluemind.migration.$n" > /dev/null 2> "$work/doc.err" \
        || { echo "install-built: ansible-doc -t $kind bluemind.migration.$n failed: $(tail -3 "$work/doc.err")" >&2; fail=1; }
    done
  done
done
for role in "$top"/roles/*/; do
  role=$(basename "$role")
  "$bin/ansible-doc" -t role "bluemind.migration.$role" > /dev/null 2> "$work/doc.err" \
    || { echo "install-built: ansible-doc -t role bluemind.migration.$role failed: $(tail -3 "$work/doc.err")" >&2; fail=1; }
done
[ "$fail" = 0 ] || exit 1
echo "install-built: $(basename "$tarball") installed in $work/collections with its dependencies; ansible-doc reads every plugin and role from it"
