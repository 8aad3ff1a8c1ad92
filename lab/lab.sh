#!/usr/bin/env bash
# The lab: two hosts (origin: Debian 11 + PostgreSQL 13, target: Debian 12 + PostgreSQL 15) with systemd,
# sshd, rsync, postfix, PostgreSQL and the BlueMind simulator, on the project's own Docker network.
#   lab.sh up [SCALE]   build or reuse the images, start the hosts, seed (origin at SCALE, target fresh),
#                       write lab/inventory.yml and lab/.state/lab.json
#   lab.sh down         remove the hosts, the network and the state
#   lab.sh sync         copy lab/sim into the running hosts and restart the simulator (development)
#   lab.sh seed SCALE   reseed the origin at SCALE (s, m, l or a file count) and the target fresh
# BMLAB_BLUEMIND=5 makes the BlueMind 5.x flavour (origin Debian 12, target Debian 13, no Cyrus, zstd
# bodies by hash, the internal firewall API, a Keycloak stand-in; lab/CONTRACT.md); 4 is the default.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# BMLAB_NAME runs a second lab beside the first (benchmarks): its own containers, network, subnet
# (BMLAB_NET, the first three octets), state folder and inventory.
name=${BMLAB_NAME:-bmlab}
net24=${BMLAB_NET:-172.30.99}
if [ "$name" = bmlab ]; then suffix=""; else suffix="-$name"; fi
state="$top/lab/.state$suffix"
inventory="$top/lab/inventory$suffix.yml"
net=$name subnet=$net24.0/24
bluemind=${BMLAB_BLUEMIND:-4}
case "$bluemind" in 4|5) ;; *) echo "ERROR: BMLAB_BLUEMIND=$bluemind: the lab has BlueMind 4 or 5" >&2; exit 2 ;; esac
declare -A ip=([origin]=$net24.10 [target]=$net24.20)
hosts=(origin target)
die() { echo "ERROR: $*" >&2; exit 1; }
say() { echo "lab: $*" >&2; }
in_host() { local h=$1; shift; docker exec "$name-$h" bash -c "$*"; }

preflight() {
  [ "$(id -u)" = 0 ] || die "the lab needs root (Docker, debootstrap): run 'make lab' as root or with sudo"
  "$top/scripts/bootstrap.sh" system
  local root free_kb
  root=$(docker info -f '{{.DockerRootDir}}' 2>/dev/null) || die "the Docker engine does not answer: see /var/log/dockerd.log"
  free_kb=$(df -Pk "$root" | awk 'NR==2{print $4}')
  local need_gb=${BMLAB_MIN_FREE_GB:-4}
  [ "$free_kb" -ge $((need_gb * 1024 * 1024)) ] \
    || die "only $((free_kb / 1024)) MiB free on $root: the lab needs ${need_gb} GiB (more for SCALE=m/l); free some space (docker system prune?)"
}

start_host() {  # start (or keep) one host on the image of its current recipe
  local h=$1 image=$2 cname="$name-$1" running why="image changed or stopped"
  running=$(docker inspect -f '{{.Config.Image}} {{.State.Running}}' "$cname" 2>/dev/null || true)
  if [ "$running" = "$image true" ]; then
    # A host a migration ran on (state file, services disabled by a cutover) is not a starting point.
    if docker exec "$cname" bash -c '! test -e /var/lib/bluemind-migration && systemctl is-enabled -q bluemind.target postfix'; then
      return 0
    fi
    why="a migration ran on it"
  fi
  if [ -n "$running" ]; then
    say "recreating $cname ($why)"
    docker rm -f "$cname" >/dev/null
    rm -f "$state"/seed-*.json
  fi
  say "starting $cname from $image"
  docker run -d --name "$cname" --hostname "$h" --label bmlab=1 --label bmlab.name="$name" \
    --network "$net" --ip "${ip[$h]}" \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt seccomp=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    "$image" >/dev/null
}

wait_host() {  # until systemd has booted and the services answer
  local h=$1 st
  for _ in $(seq 90); do
    st=$(docker exec "$name-$h" systemctl is-system-running 2>/dev/null || true)
    case "$st" in running|degraded) break ;; esac
    sleep 1
  done
  case "$st" in running|degraded) ;; *) die "$name-$h did not boot (systemd: '${st:-no answer}'): docker logs $name-$h" ;; esac
  if [ "$st" = degraded ]; then
    say "$name-$h is degraded: $(docker exec "$name-$h" systemctl --failed --no-legend --plain | awk '{print $1}' | xargs)"
  fi
  in_host "$h" 'for i in $(seq 60); do pg_isready -q -h 127.0.0.1 && exit 0; sleep 1; done; exit 1' \
    || die "PostgreSQL does not answer on $name-$h: docker exec $name-$h journalctl -u postgresql"
}

lab_ca() {  # the lab's CA and one server certificate a host; the controller keeps the CA for TLS checks
  mkdir -p "$state"
  if [ ! -s "$state/ca.pem" ]; then
    # keyUsage and basicConstraints marked critical: Python 3.13 (Debian 13) verifies with
    # VERIFY_X509_STRICT and refuses a CA without a key usage extension.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=bluemind.migration lab CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$state/ca.key" -out "$state/ca.pem" 2>/dev/null
  fi
  local h tmp
  for h in "${hosts[@]}"; do
    tmp=$(mktemp -d)
    openssl req -newkey rsa:2048 -nodes -subj "/CN=bluemind.lab.test" -keyout "$tmp/key" -out "$tmp/csr" 2>/dev/null
    # Like a real external-url certificate, it names the service, which either host may carry.
    printf 'subjectAltName=DNS:bluemind.lab.test,IP:%s,IP:%s\n' "${ip[origin]}" "${ip[target]}" >"$tmp/ext"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n' >>"$tmp/ext"
    openssl x509 -req -in "$tmp/csr" -CA "$state/ca.pem" -CAkey "$state/ca.key" -CAcreateserial \
      -days 3650 -extfile "$tmp/ext" -out "$tmp/crt" 2>/dev/null
    cat "$tmp/crt" "$tmp/key" "$state/ca.pem" >"$tmp/bm_cert.pem"
    docker cp -q "$tmp/bm_cert.pem" "$name-$h:/etc/ssl/certs/bm_cert.pem"
    docker cp -q "$state/ca.pem" "$name-$h:/var/lib/bm-ca/cacert.pem"
    if [ "$h" = origin ]; then  # per-domain certificate (BlueMind >= 4.8): only the origin has set one up
      docker cp -q "$tmp/bm_cert.pem" "$name-$h:/etc/ssl/certs/bm_cert-lab.test.pem"
      docker cp -q "$tmp/bm_cert.pem" "$name-$h:/etc/bm/certs/bm_cert-lab.test.pem"
    fi
    rm -rf "$tmp"
    in_host "$h" 'chmod 600 /etc/ssl/certs/bm_cert*.pem /etc/bm/certs/*.pem 2>/dev/null; chown root:root /etc/ssl/certs/bm_cert*.pem; systemctl restart bm-core'
  done
}

ssh_access() {  # the controller reaches both hosts as root over SSH, with pinned host keys
  [ -s "$state/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C bmlab-controller -f "$state/id_ed25519"
  : >"$state/known_hosts"
  local h
  for h in "${hosts[@]}"; do
    docker cp -q "$state/id_ed25519.pub" "$name-$h:/root/.ssh/authorized_keys"
    in_host "$h" 'chown root:root /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys'
    echo "${ip[$h]} $(in_host "$h" 'cat /etc/ssh/ssh_host_ed25519_key.pub' | cut -d' ' -f1,2)" >>"$state/known_hosts"
  done
}

seed() {
  local scale=$1 h out
  say "seeding origin at scale $scale, target as a fresh install"
  for h in "${hosts[@]}"; do
    if [ "$h" = origin ]; then
      out=$(in_host origin "bm-sim seed --scale '$scale'") || die "seeding the origin failed"
    else
      out=$(in_host target "bm-sim seed --fresh") || die "seeding the target failed"
    fi
    echo "$out" | tail -n 1 >"$state/seed-$h.json"
    say "$h: $(cat "$state/seed-$h.json")"
  done
}

write_inventory() {
  cat >"$inventory" <<YML
# Written by 'make lab' for the lab's two hosts; see inventory.example for a real installation.
all:
  vars:
    ansible_user: root
    ansible_python_interpreter: /usr/bin/python3
    ansible_ssh_private_key_file: $state/id_ed25519
    ansible_ssh_common_args: -o UserKnownHostsFile=$state/known_hosts -o StrictHostKeyChecking=yes
    bluemind_admin_login: admin0@global.virt
    bluemind_admin_password: admin     # the lab's only; use a vault for a real server
    bluemind_api_ca_path: /var/lib/bm-ca/cacert.pem   # on the hosts: the modules run there
    # the lab's flavour: BlueMind $bluemind (BMLAB_BLUEMIND); the collection reads the major itself
    cutover_smoke_recipient: admin@lab.test
  children:
    origin:
      hosts:
        $name-origin:
          ansible_host: ${ip[origin]}
          bluemind_api_url: https://${ip[origin]}
    target:
      hosts:
        $name-target:
          ansible_host: ${ip[target]}
          bluemind_api_url: https://${ip[target]}
YML
  cat >"$state/lab.json" <<JSON
{"ca_file": "$state/ca.pem", "admin_login": "admin0@global.virt", "admin_password": "admin", "bluemind": $bluemind,
 "ssh_key": "$state/id_ed25519", "known_hosts": "$state/known_hosts",
 "hosts": {"origin": {"name": "$name-origin", "ip": "${ip[origin]}"},
           "target": {"name": "$name-target", "ip": "${ip[target]}"}}}
JSON
}

up() {
  local scale=${1:-s} h
  preflight
  declare -A image
  for h in "${hosts[@]}"; do image[$h]=$("$top/lab/images/build.sh" "$h" "$bluemind"); done
  python3 "$top/lab/networks.py" lab "$subnet" "$net"
  docker network inspect "$net" >/dev/null 2>&1 || docker network create --label bmlab.network=1 --subnet "$subnet" "$net" >/dev/null
  # A failure past this point removes what it started, so no half-built lab stays behind.
  trap 'rc=$?; if [ $rc -ne 0 ]; then say "failed: removing the half-started lab (what failed is said above)"; down; fi' EXIT
  for h in "${hosts[@]}"; do start_host "$h" "${image[$h]}"; done
  for h in "${hosts[@]}"; do wait_host "$h"; done
  lab_ca
  ssh_access
  if [ ! -s "$state/seed-origin.json" ] || [ "$(cat "$state/scale" 2>/dev/null)" != "$scale" ]; then
    seed "$scale"; echo "$scale" >"$state/scale"
  fi
  write_inventory
  trap - EXIT
  say "up (BlueMind $bluemind): origin ${ip[origin]} (Debian $(in_host origin 'cat /etc/debian_version')), target ${ip[target]} (Debian $(in_host target 'cat /etc/debian_version')); inventory ${inventory#"$top"/}"
}

down() {
  docker rm -f "$name-origin" "$name-target" >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$state" "$inventory"
  say "down"
}

sync() {
  local h
  for h in "${hosts[@]}"; do
    docker inspect "$name-$h" >/dev/null 2>&1 || die "$name-$h is not running: make lab"
    tar -C "$top/lab/sim" --exclude __pycache__ -c . | docker exec -i "$name-$h" tar -C /opt/bmsim -x
    if [ "$bluemind" = 5 ]; then
      in_host "$h" 'install -m 755 /opt/bmsim/bin/bmctl /usr/bin/bmctl; install -m 755 /opt/bmsim/bin/bm-cli /usr/bin/bm-cli;
        install -m 644 /opt/bmsim/units/* /etc/systemd/system/; rm -f /etc/systemd/system/bm-lmtpd.service /etc/systemd/system/bm-hps.service;
        install -m 644 /opt/bmsim/units5/* /etc/systemd/system/;
        systemctl daemon-reload; systemctl reset-failed bm-core bm-keycloak; systemctl enable -q --now bm-nginx;
        systemctl is-active -q bluemind.target && systemctl restart bm-core bm-keycloak; systemctl try-restart bm-sim-load'
      continue
    fi
    in_host "$h" 'install -m 755 /opt/bmsim/bin/bmctl /usr/bin/bmctl; install -m 755 /opt/bmsim/bin/bm-cli /usr/bin/bm-cli; install -m 644 /opt/bmsim/units/* /etc/systemd/system/;
      systemctl daemon-reload; systemctl reset-failed bm-core bm-lmtpd; systemctl enable -q --now bm-nginx;
      systemctl is-active -q bluemind.target && systemctl restart bm-core bm-lmtpd; systemctl try-restart bm-sim-load'
  done
  say "simulator synced into both hosts"
}

case "${1:-}" in
  up) up "${2:-s}" ;;
  down) down ;;
  sync) sync ;;
  seed) seed "${2:-s}"; echo "${2:-s}" >"$state/scale" ;;
  *) die "usage: lab.sh up [SCALE] | down | sync | seed SCALE" ;;
esac
