#!/bin/bash
# Runs at image build (Dockerfile): installs the BlueMind simulator and the host's static files.
# Per-instance identity is made at first boot (bin/bmsim-firstboot); data by `python3 -m bmsim.seed`.
set -euxo pipefail
sim=/opt/bmsim
install -m 755 "$sim/bin/bmctl" /usr/bin/bmctl
install -m 755 "$sim/bin/bm-cli" /usr/bin/bm-cli
install -m 755 "$sim/bin/bm-sim-set-version" /usr/local/sbin/bm-sim-set-version
install -m 755 "$sim/bin/bm-sim-add-package" /usr/local/sbin/bm-sim-add-package
install -m 755 "$sim/bin/bmsim-firstboot" /usr/local/sbin/bmsim-firstboot
install -m 644 "$sim"/units/* /etc/systemd/system/
cat >/usr/local/bin/bm-sim <<'SH'
#!/bin/sh
# bm-sim <module> [args]: run a simulator module (seed, activity, load, ...)
m=$1; shift; PYTHONPATH=/opt/bmsim exec python3 -m "bmsim.$m" "$@"
SH
chmod 755 /usr/local/bin/bm-sim
/usr/local/sbin/bm-sim-set-version 4.9.3884

# Host keys are made per instance at first boot, never baked into the image.
rm -f /etc/ssh/ssh_host_*
mkdir -p /root/.ssh && chmod 700 /root/.ssh

# BlueMind's static configuration files (the procedure copies these).
mkdir -p /etc/bm/certs /etc/bm/bm-iptables /etc/bm-hps /etc/bm-webmail /var/lib/bm-ca \
  /usr/share/bm-elasticsearch/config /var/log/bm-sim /var/lib/bm-sim
cat >/etc/imapd.conf <<'CONF'
configdirectory: /var/lib/cyrus
partition-default: /var/spool/cyrus/data
metapartition-default: /var/lib/cyrus/meta
metapartition_files: header index cache squat
sievedir: /var/spool/sieve
virtdomains: userid
unixhierarchysep: 1
CONF
cat >/etc/cyrus.conf <<'CONF'
START { recover cmd="ctl_cyrusdb -r" }
SERVICES { imap cmd="imapd" listen="imap" prefork=0
  lmtpunix cmd="lmtpd" listen="/var/lib/cyrus/socket/lmtp" prefork=0 }
CONF
echo "hps.port=8079" >/etc/bm-hps/hps.properties
echo "webmail.plugins=bm_webmail,bm_calendar" >/etc/bm-webmail/bm-webmail.ini
cat >/usr/share/bm-elasticsearch/config/elasticsearch.yml <<'CONF'
cluster.name: bluemind-unset
path.data: /var/spool/bm-elasticsearch/data
network.host: 127.0.0.1
CONF

# The seven data trees of the procedure, with BlueMind's owners.
install -d -o cyrus -g mail -m 750 /var/spool/cyrus /var/lib/cyrus /var/spool/sieve /var/spool/bm-hsm
install -d -o elasticsearch -g elasticsearch -m 750 /var/spool/bm-elasticsearch
install -d -o root -g root -m 755 /var/spool/bm-docs /var/spool/bm-filehosting

# Postfix as BlueMind configures it: hash maps built by postmap from the -flat files, delivery by LMTP.
for m in virtual_domains virtual_mailbox virtual_alias transport master_relay_transport; do
  : >"/etc/postfix/$m-flat"
  postmap "hash:/etc/postfix/$m-flat" && mv "/etc/postfix/$m-flat.db" "/etc/postfix/$m.db"
done
postconf -e \
  "myhostname=bluemind.lab.test" \
  "mydestination=localhost" \
  "inet_interfaces=all" "inet_protocols=ipv4" \
  "mynetworks=127.0.0.0/8" \
  "virtual_mailbox_domains=hash:/etc/postfix/virtual_domains" \
  "virtual_mailbox_maps=hash:/etc/postfix/virtual_mailbox" \
  "virtual_alias_maps=hash:/etc/postfix/virtual_alias" \
  "transport_maps=hash:/etc/postfix/master_relay_transport, hash:/etc/postfix/transport" \
  "virtual_transport=lmtp:inet:127.0.0.1:2400" \
  "smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination" \
  "maillog_file=/var/log/postfix.log"
# postlogd (root) appends to it; postsuper and the other tools drop to mail_owner before logging.
install -o postfix -g adm -m 640 /dev/null /var/log/postfix.log

systemctl enable bmsim-firstboot.service bluemind.target bm-nginx.service ssh.service postfix.service postgresql.service
# Nothing a container needs: consoles and kernel-facing units.
systemctl mask getty@tty1.service console-getty.service systemd-logind.service \
  sys-kernel-config.mount sys-kernel-debug.mount systemd-remount-fs.service 2>/dev/null || true
