#!/usr/bin/env bash
# make demo: a whole migration in the lab, as an operator would run it, with mail flowing meanwhile.
#   fresh lab at SCALE (default m) -> mail load on the origin -> prereq + hot sync -> user activity
#   -> hot sync again -> activity -> the cold window and the cutover -> the report.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scale=${SCALE:-m}
# The lab lab.sh runs: BMLAB_NAME (and BMLAB_NET, read by lab.sh) for one beside the default.
name=${BMLAB_NAME:-bmlab}
if [ "$name" = bmlab ]; then suffix=""; else suffix="-$name"; fi
export PATH=$top/.venv/bin:$PATH ANSIBLE_CONFIG=$top/ansible.cfg ANSIBLE_INVENTORY=$top/lab/inventory$suffix.yml
step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }
origin() { docker exec "$name-origin" bash -c "$*"; }
# bm-sim activity prints every file it touched: show the counts only.
activity() {
  origin "bm-sim activity $*" | tail -n 1 | python3 -c \
    'import json, sys; d = json.load(sys.stdin); print({k: len(v) if isinstance(v, list) else v for k, v in d.items()})'
}
t0=$(date +%s)

step "fresh lab at scale $scale (a previous demo leaves a migrated target: start over)"
bash lab/lab.sh down >/dev/null 2>&1 || true
bash lab/lab.sh up "$scale"

step "mail load on the origin: 2 messages/s while it serves"
origin 'echo RATE=2 >/etc/bm/sim-load.conf && systemctl start bm-sim-load'

step "prerequisites and the first hot sync"
ansible-playbook playbooks/migrate.yml --tags prereq,hot_sync

step "users keep working on the origin: flags rewritten in place, deletions"
activity --flags 200 --delete 50 --seed 1

step "second hot sync (the delta only)"
ansible-playbook playbooks/migrate.yml --tags hot_sync

step "more activity since the last hot sync"
activity --flags 200 --delete 50 --seed 2

step "the cold window and the cutover"
ansible-playbook playbooks/migrate.yml --tags cold_sync,db_migrate,config_copy,cutover \
  -e bluemind_confirm_downtime=true -e bluemind_confirm_cutover=true

step "report (reports/$name-target.md, .json, the timeline .svg, the page .html)"
cat "reports/$name-target.md"
ls -l "reports/$name-target".*
printf '\ndemo finished in %d s\n' $(( $(date +%s) - t0 ))
