#!/usr/bin/env bash
# make bench [SCALE=s|m|l]: the three benchmarks on the bench lab (bmbench, 172.30.97.0/24, beside the
# tests' lab), each printing its table; raw figures and the machine's description in bench/results/.
#   RUNS=3     interleaved runs of each downtime arm      REPS=3  hot sync repetitions
#   ARMS=abc   adds arm c to the downtime benchmark (the collection with -e $BENCH_ABLATE)
#   BENCH_KEEP_LAB=1 leaves the bench lab up at the end (default: taken down when this script started it)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scale=${SCALE:-s}
export BMLAB_NAME=${BMLAB_NAME:-bmbench} BMLAB_NET=${BMLAB_NET:-172.30.97}
export ANSIBLE_CONFIG="$top/ansible.cfg" PATH="$top/.venv/bin:$PATH"
py="$top/.venv/bin/python"
[ -x "$py" ] || { echo "bench: .venv is missing: run 'make setup' first" >&2; exit 1; }
started_lab=0
if ! docker inspect "$BMLAB_NAME-origin" "$BMLAB_NAME-target" >/dev/null 2>&1; then
  bash lab/lab.sh up "$scale"
  started_lab=1
fi
cleanup() { if [ "$started_lab" = 1 ] && [ -z "${BENCH_KEEP_LAB:-}" ]; then bash lab/lab.sh down; fi; }
trap cleanup EXIT
out="$top/bench/results"
mkdir -p "$out"
start=$(date +%s)
"$py" bench/downtime.py --scale "$scale" --runs "${RUNS:-3}" --arms "${ARMS:-ab}" | tee "$out/downtime-$scale.txt"
echo
"$py" bench/hot_sync.py --scale "$scale" --reps "${REPS:-3}" | tee "$out/hot_sync-$scale.txt"
echo
"$py" bench/scale.py --scale "$scale" | tee "$out/scale.txt"
echo
echo "bench: done in $(( $(date +%s) - start )) s; raw figures in bench/results/"
