#!/bin/bash
# The vendor's "Cold synchronization" steps 2-5 and the start of the target, VERBATIM from the
# BlueMind procedure (English text of ../shared/seeds/000_e9c881b4ab890dfb.txt, "Cold synchronization"),
# run as root on the TARGET. Step 1 (bmctl stop; service postfix stop on both servers) is done by the
# harness just before, and the clock starts there.
#
# Nothing is adapted but the way the origin is reached: the bench harness (bench/lib.py vendor_trust)
# adds "origsrv.domain.tld" to the target's /etc/hosts and a /root/.ssh/config Host block with a key
# the origin trusts and the origin's pinned host key, which is what the procedure's prerequisite
# ("the target system's root user must be able to authenticate as root on the original server,
# ideally using key authentication") asks for. The lab's PGPASSWORD is the procedure's own "bj".
#
# Like an operator typing at a prompt, there is no `set -e`: a failing command does not stop the
# rest. Where the procedure silently loses data (measured by bench/downtime.py's check):
#   - `cat dump | psql` runs without ON_ERROR_STOP: a statement that fails (an object the target's
#     PostgreSQL major refuses, an extension, an encoding problem) is skipped and psql still exits 0;
#   - `createdb` as postgres: the databases belong to postgres, not bj, and lose their
#     database-level settings (ALTER DATABASE ... SET TIMEZONE='GMT'), which pg_dump does not carry;
#   - plain `rsync -a` compares times in whole seconds: a same-size rewrite in the same second as
#     the previous pass is skipped (an in-place cyrus.index rewrite, for instance);
#   - mail still queued in the origin's postfix is never moved;
#   - the per-domain certificates (/etc/ssl/certs/bm_cert-<domain>.pem) are not in the scp list;
#   - the .db postfix maps are copied as binary files from an older libdb.
# The harness records every command's exit code in /tmp/vendor_cold.rc (one line each).
rc_log=/tmp/vendor_cold.rc
: >"$rc_log"
# (exit code, start and end times, the command) of each line, for the harness' per-step figures
run() { local t0 rc; t0=$(date +%s.%N); "$@"; rc=$?; echo "$rc $t0 $(date +%s.%N) $*" >>"$rc_log"; }
shellrun() { local t0 rc; t0=$(date +%s.%N); bash -c "$1"; rc=$?; echo "$rc $t0 $(date +%s.%N) $1" >>"$rc_log"; }

# 2. In the target server, synchronize the data again:
run rsync -avH --delete root@origsrv.domain.tld:/var/spool/cyrus/ /var/spool/cyrus/
run rsync -avH --delete root@origsrv.domain.tld:/var/lib/cyrus/ /var/lib/cyrus/
run rsync -avH --delete root@origsrv.domain.tld:/var/spool/bm-hsm/ /var/spool/bm-hsm/
run rsync -avH --delete root@origsrv.domain.tld:/var/spool/sieve/ /var/spool/sieve/
run rsync -avH --delete root@origsrv.domain.tld:/var/spool/bm-elasticsearch/ /var/spool/bm-elasticsearch/
run rsync -avH --delete root@origsrv.domain.tld:/var/spool/bm-docs/ /var/spool/bm-docs/
run rsync -avH --delete root@origsrv.domain.tld:/var/spool/bm-filehosting/ /var/spool/bm-filehosting

# 3. In the target server, do a database dump for the original server data:
shellrun 'ssh root@origsrv.domain.tld "PGPASSWORD=bj pg_dump -U bj -h localhost bj" > /tmp/db.sql'
shellrun 'ssh root@origsrv.domain.tld "PGPASSWORD=bj pg_dump -U bj -h localhost bj-data" > /tmp/db-data.sql'

# 4. In the target server, copy the original server's files to the target server:
shellrun 'scp -r root@origsrv.domain.tld:/etc/bm/* /etc/bm'
shellrun 'scp root@origsrv.domain.tld:/etc/bm/bm.ini /etc/bm/bm.ini'
shellrun 'scp -r root@origsrv.domain.tld:/etc/bm-hps/* /etc/bm-hps'

shellrun 'scp root@origsrv.domain.tld:/etc/ssl/certs/bm_cert.pem /etc/ssl/certs/bm_cert.pem'

shellrun 'scp -r root@origsrv.domain.tld:/var/lib/bm-ca/* /var/lib/bm-ca'

shellrun 'scp root@origsrv.domain.tld:/usr/share/bm-elasticsearch/config/elasticsearch.yml /usr/share/bm-elasticsearch/config/elasticsearch.yml'

shellrun 'scp root@origsrv.domain.tld:/etc/imapd* /etc/'
shellrun 'scp root@origsrv.domain.tld:/etc/cyrus* /etc/'

shellrun 'scp root@origsrv.domain.tld:/etc/postfix/main.cf /etc/postfix/main.cf'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/master.cf /etc/postfix/master.cf'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/master_relay_transport-flat /etc/postfix/master_relay_transport-flat'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/master_relay_transport.db /etc/postfix/master_relay_transport.db'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/transport-flat /etc/postfix/transport-flat'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/transport.db /etc/postfix/transport.db'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/virtual_alias-flat /etc/postfix/virtual_alias-flat'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/virtual_alias.db /etc/postfix/virtual_alias.db'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/virtual_domains-flat /etc/postfix/virtual_domains-flat'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/virtual_domains.db /etc/postfix/virtual_domains.db'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/virtual_mailbox-flat /etc/postfix/virtual_mailbox-flat'
shellrun 'scp root@origsrv.domain.tld:/etc/postfix/virtual_mailbox.db /etc/postfix/virtual_mailbox.db'
shellrun 'scp root@origsrv.domain.tld:/etc/bm-webmail/* /etc/bm-webmail/'

# 5. Import the database into the target server:
#    # su - postgres
#    $ dropdb bj ... $ exit      (the four lines typed in postgres' shell)
t0=$(date +%s.%N)
su - postgres <<'EOF'
dropdb bj
dropdb bj-data
createdb bj
createdb bj-data
exit
EOF
echo "$? $t0 $(date +%s.%N) su - postgres (dropdb bj; dropdb bj-data; createdb bj; createdb bj-data)" >>"$rc_log"
export PGPASSWORD=bj
shellrun 'cat /tmp/db.sql | psql -U bj -h localhost bj'
shellrun 'cat /tmp/db-data.sql | psql -U bj -h localhost bj-data'

# Switching servers: the target starts in place of the origin (the address is not moved in the
# bench, as with the collection's bluemind_cutover_ip_mode=none).
run bmctl start
run service postfix start
