#!/bin/bash
# Runs at image build after install.sh for the 5.x flavour (lab/images/Dockerfile.bm5): the
# 4.x host that install.sh made becomes a 5.x one. Sources (lab/FIDELITY.md, rows 5x-*):
# mdhender/bluemindfork master, packaging/bm-conf/debian/postinst (purges bm-lmtpd, bm-hps and the
# Cyrus services), packaging/bm-conf/ROOT/lib/systemd/system-preset/10-bluemind.preset (bm-keycloak),
# parent/imap/net.bluemind.sds.store.cyrusspool (by_hash spools).
set -euxo pipefail
sim=/opt/bmsim
# BlueMind 5.0.4859: a 5.x build named in the source (commit 89e912361, 2023-08-17).
/usr/local/sbin/bm-sim-set-version 5.0.4859
# No Cyrus: its configuration, metadata and sieve trees, and the services bm-conf purges.
rm -rf /etc/imapd.conf /etc/cyrus.conf /etc/bm-hps /var/lib/cyrus /var/spool/sieve
rm -f /etc/systemd/system/bm-lmtpd.service /etc/systemd/system/bm-hps.service
install -m 644 "$sim"/units5/* /etc/systemd/system/
# bm-conf's postinst: group bluemind, bm-core.tok root:bluemind 440 (firstboot writes the token).
getent group bluemind >/dev/null || groupadd -r bluemind
mkdir -p /etc/bm-keycloak
systemctl enable bluemind.target
