#!/usr/bin/env bash
# The molecule scenarios, one after the other, except those named in MOLECULE_BESIDE: each of them runs
# in the background beside the queue, from its start, because it has its own network and host names
# (two_pairs: bmmol-pairs, mol-*-a/b) and no timing that a busy machine breaks (its slow pair is 30 s
# against a 15 s margin). The scenarios of the fault windows, which cut links at a given rate, stay in
# the queue alone. CI's time limit is what this is for: two_pairs took some 11 minutes of 60 alone.
#   scripts/molecule.sh SCENARIO...     (make test-molecule; BLUEMIND=4|5 is the default lab flavour)
# Each scenario's whole log is .cache/molecule-<scenario>.log; a failure prints what its tests and
# tasks said. Exit status: non-zero when any scenario failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
beside=" ${MOLECULE_BESIDE-two_pairs} "
mkdir -p .cache

flavour_of() { case $1 in bm5*) echo 5 ;; *) echo "${BMLAB_BLUEMIND:-4}" ;; esac; }

run() {  # run SCENARIO [quiet]: one scenario on the lab images of its flavour
  local s=$1 quiet=${2:-} flavour start log=.cache/molecule-$1.log rc
  flavour=$(flavour_of "$s") start=$(date +%s)
  (
    set -e
    export BMLAB_ORIGIN_IMAGE BMLAB_TARGET_IMAGE
    BMLAB_ORIGIN_IMAGE=$(lab/images/build.sh origin "$flavour")
    BMLAB_TARGET_IMAGE=$(lab/images/build.sh target "$flavour")
    echo "=== molecule scenario $s (BlueMind $flavour lab images)"
    if [ -n "$quiet" ]; then
      molecule -c molecule/base.yml test -s "$s" >"$log" 2>&1
    else
      molecule -c molecule/base.yml test -s "$s" 2>&1 | tee "$log"
    fi
  )
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "=== molecule scenario $s FAILED after $(($(date +%s) - start)) s; what its tests and tasks said (whole log: $log):"
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -aE -A6 '(FAILED|ERROR) [^ ]+\.py|│ E  |fatal: |Error: ' | tail -n 60 || true
    return 1
  fi
  echo "=== molecule scenario $s passed in $(($(date +%s) - start)) s"
}

# The images first, once: two scenarios building the same image at once would race.
for flavour in $(for s in "$@"; do flavour_of "$s"; done | sort -u); do
  lab/images/build.sh origin "$flavour" >/dev/null && lab/images/build.sh target "$flavour" >/dev/null || exit 1
done
python3 lab/networks.py molecule || exit 1

declare -A background=()
for s in "$@"; do
  if [[ $beside == *" $s "* ]]; then
    echo "=== molecule scenario $s starts beside the others (its log: .cache/molecule-$s.log)"
    run "$s" quiet >".cache/molecule-$s.outcome" 2>&1 &
    background[$s]=$!
  fi
done
failed=()
for s in "$@"; do
  [ -n "${background[$s]:-}" ] && continue
  run "$s" || { failed+=("$s"); break; }
done
for s in "${!background[@]}"; do  # waited for even after a failure: no scenario's containers left behind
  wait "${background[$s]}" || failed+=("$s")
  cat ".cache/molecule-$s.outcome"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "=== molecule: failed: ${failed[*]}"
  exit 1
fi
