#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_db_transfer
short_description: Move the BlueMind databases from the origin's PostgreSQL to the target's
version_added: 1.0.0
description:
  - Runs on the target. The target's C(pg_dump) (the newer one, as PostgreSQL advises for upgrades)
    reads the origin's server through an SSH tunnel (C(ssh -N -L) to the origin's
    C(127.0.0.1:5432)), so nothing changes in the origin's PostgreSQL configuration.
  - Every read of the origin happens in one exported snapshot (C(pg_export_snapshot), held by a
    read-only transaction), shared by C(pg_dump --snapshot), the row listings and the final counts,
    so a pass is consistent and exactly verified even while BlueMind still writes on the origin, so
    the hot phase can copy the databases ahead of the window.
  - With O(mode=sync) (the default), when the target already holds a copy with the same schema
    (compared as C(pg_dump --schema-only) text) and the same settings, only the rows that differ
    move. Each table with a key is listed on both sides, sorted by the hash of the key; the
    two listings are merged and the rows that are new, changed or gone are deleted and copied again
    in one transaction on the target (C(session_replication_role=replica), so no trigger fires there and
    counters and change sets that BlueMind's triggers keep arrive as the origin has them). A table's
    key is its primary key, else a unique index that PostgreSQL would take as a replica identity
    (valid, immediate, not partial, no expression, every column C(NOT NULL)), as the pg_repack
    maintenance of BlueMind 4.x gives the partitions of C(t_container_changeset). A table without
    either (BlueMind 4.9's C(t_mailbox_record), C(t_container_acl)) is listed by content, one line
    per distinct row with its number of copies, so there too only the rows that differ move. A
    partitioned table moves through its partitions. A table with more than half of its rows to move is copied whole. The sequences
    (identity columns' included) take the origin's values.
  - How rows are compared. The first pass compares the C(md5) of every row's text on both sides.
    When O(state_file) holds the ids the last pass left (both clusters' system identifier and
    timeline, both databases' oids, and the oldest transaction running on each side at its end),
    a later pass compares transaction ids instead of contents, without reading the rows (but for the
    tables without a key, which only their content identifies). A row
    whose version was written (C(xmin), which freezing keeps) by a transaction at or after that
    point on either side moves, and the keys find inserts and deletes. That pass reads no TOAST
    data, which makes the cold window's pass a matter of seconds.
  - Tables that provably changed on neither side are not listed at all. Each pass keeps, with its
    ids in O(state_file), every table's signature on both sides (its oid, C(relfilenode) and the
    C(n_tup_ins), C(n_tup_upd) and C(n_tup_del) of PostgreSQL's cumulative statistics), the origin's
    read before its snapshot is exported and the target's once the pass's writes are counted. A
    later pass, once no other session is connected to the database on either side (BlueMind
    stopped, as in the cold window), reads them again after its own snapshot is exported and skips a
    table whose signatures are the kept ones. Before PostgreSQL 15 it also waits for a statistics
    file written after that moment and reads the statistics socket's lost datagrams
    (C(/proc/net/udp), through C(pg_read_file)). A restart, a crash, a reset of the statistics,
    lost datagrams, a socket that cannot be read or a database still in use make every table
    listed, and RV(databases[].skip_blocker) says why.
  - Tables listed by their changes alone. With the same proof, a table with a key whose origin
    deleted no row since the last pass (the same oid, C(relfilenode) and C(n_tup_del)) and whose
    target did not change is not listed whole. Only the keys of the rows written since on either
    side are listed, and those rows are deleted and copied again on the target. Its other rows are
    the ones the last pass left equal, so the table holds the origin's rows exactly when it holds
    as many. Before the target's transaction commits, every such table is counted against the
    origin's count in the pass's snapshot. When one differs (an update that changed a key removes
    the old one without a deletion counted), nothing is committed, that table is listed whole and
    the changes applied again (RV(databases[].tables_recounted)). A dry run lists every table whole.
  - The schemas are compared as the target's C(pg_dump --schema-only) prints them on both sides, but
    when both sides' catalogs are as the last pass left them. A pass that found the schemas the same
    keeps, with its ids in O(state_file), a digest of each side's catalogs (every catalog's row count
    and the transaction ids that wrote its rows, so any DDL changes it; the statistics and the large
    objects left out; the roles and tablespaces in). A later pass reads them again with the
    database's state (the origin's in its snapshot) and dumps no schema when both are the kept ones
    and neither server nor C(pg_dump) changed version (RV(databases[].schemas_compared_by)).
  - When the schemas or the settings differ, when the target has no copy yet, or when O(mode=full),
    the database is copied whole as described next.
  - Before anything on the target changes, the module reads every origin database's locale
    (C(LC_COLLATE), C(LC_CTYPE); BlueMind uses C(en_US.UTF-8)) and extensions (C(pg_extension) with
    their schema; BlueMind puts C(hstore), C(btree_gin), C(ltree) and C(unaccent) in C(pg_catalog)),
    and fails, naming what to install, when the target's server lacks one of the extensions
    (C(pg_available_extensions)) or cannot load one of the locales.
  - For a full copy, the target's copy is dropped and created again as BlueMind creates it, with owner
    O(db_user), encoding UTF8, C(template0), and the origin's C(LC_COLLATE) and C(LC_CTYPE). The
    origin's database-level settings (C(ALTER DATABASE ... SET), which a plain C(pg_dump) does not
    carry) are applied, and every extension the origin's database has in C(pg_catalog) or C(public)
    is created in that same schema (an extension in a schema of its own is created by the dump,
    after its schema), then C(pg_dump | psql -v ON_ERROR_STOP=1) streams the data without a
    temporary file; the exit codes of both tools are checked. A dump of a whole database carries its
    large objects too (contents, owners, ACLs, comments), with their oids.
  - The new copy is made under a temporary name (the database's name and C(.incomplete)) and takes
    the database's name only once the restore succeeded. A copy that did not finish (a full disk, the
    target's PostgreSQL stopped or killed, the origin unreachable) is dropped when the server still
    answers, and by the next run otherwise; it is never found under the database's name, so the next
    run copies the database whole again (it cannot take a half copy for the last pass's). Its ids
    are removed from O(state_file).
  - A row sync that fails because the target's disk is full or a server stopped answering fails the
    task and leaves the target's copy as it was (one transaction); running the task again, once the
    cause is fixed, moves the rows. Other row sync failures fall back to a whole copy.
  - The message of a full disk names the file that PostgreSQL could not write and the free space of
    its filesystem (when the server runs on the target); the one of a server that stopped answering
    says to start it. Both end with what to do, which is to run the task again.
  - Afterwards, for every table, the exact row count (C(count(*))) on both sides and the value of
    every sequence are compared, as are the settings, the locale, the extensions (name and
    schema) and the large objects (their number and one digest of every object's oid, owner, ACL,
    comment and content); any difference fails the task.
  - A row sync needs the same locale and extensions on both sides too, and the same large objects
    (compared as after a pass, in the same snapshot). The row sync moves table rows only, so a large
    object created, changed or unlinked on the origin since the last pass makes the database copied
    whole, with the reason C(the large objects differ).
  - Passwords reach the PostgreSQL tools only through the environment (C(PGPASSWORD)) or a pgpass
    file (C(PGPASSFILE)), never through their command line.
options:
  databases:
    description:
      - Databases to move, in order.
    type: list
    elements: str
    default: [bj, bj-data]
  origin_db_port:
    description:
      - Port of PostgreSQL on the origin's loopback interface, the far end of the tunnel.
    type: int
    default: 5432
  origin_db_password:
    description:
      - Password of O(db_user) on the origin (C(password) in the origin's C(/etc/bm/bm.ini)).
      - Leave it out to use O(pgpass_file).
    type: str
  target_db_host:
    description:
      - Host of the target's PostgreSQL, as the target reaches it.
    type: str
    default: 127.0.0.1
  target_db_port:
    description:
      - Port of the target's PostgreSQL.
    type: int
    default: 5432
  target_db_password:
    description:
      - Password of O(db_user) on the target. Leave it out to use O(pgpass_file).
    type: str
  pgpass_file:
    description:
      - pgpass file on the target used when a password is not given. The origin is reached as
        C(127.0.0.1) on the tunnel's port, so its line should be C(127.0.0.1:*:*:bj:<password>),
        after the target's own line.
    type: path
  tunnel_port:
    description:
      - Local port of the tunnel on the target; V(0) picks a free one.
    type: int
    default: 0
  mode:
    description:
      - V(sync) moves only the rows that differ when the target's copy has the origin's schema,
        and copies the database whole otherwise. V(full) always copies it whole.
    type: str
    choices: [sync, full]
    default: sync
  state_file:
    description:
      - JSON file on the target where each pass leaves both sides' transaction ids, so that the
        next pass compares ids instead of contents. Without it, every row sync compares contents.
      - Written only for the databases verified in this pass, never in check mode.
    type: path
  origin_serving:
    description:
      - Set it while BlueMind still runs on the origin (the hot phase). Rows and counts are still exact
        (one snapshot), but sequences are outside any snapshot, so a sequence may then be ahead on the
        origin without failing the check. The pass of the cold window leaves it V(false) and compares
        sequences exactly.
      - The origin's statistics prove nothing then (BlueMind's sessions are connected), so no table is
        skipped, but the target's still prove its side, where no BlueMind runs. The tables it left untouched
        since the last pass are counted by buckets (see RV(databases[].tables_by_buckets)) rather than
        listed key by key on both sides.
    type: bool
    default: false
  catch_up:
    description:
      - With O(gate_path) (the window's pass started before the origin's stop), first run a pass as the hot
        phase does (O(origin_serving)), while the origin still serves. The rows written since the last pass
        then move before the stop, and the window's pass moves only those written during this one (its
        listings and transaction are then those of a few tables, whatever the time since the hot phase).
        It takes the lock (see O(lock_dir)) for its own length only, and its ids and signatures replace
        the last pass's in O(state_file) before the target's side is read ahead. The job says it is ready
        (see O(job_file)) once it ended, so the play's wait before the stop includes it.
      - A catch-up that fails is said in a warning and in RV(catch_up); the target then holds what the last
        pass left or what the catch-up committed, as recorded, and the window's pass moves the rest.
      - Nothing in check mode, with O(mode=full) or without O(state_file) (the window's pass then copies
        whole or compares contents anyway).
    type: bool
    default: false
  catch_up_until:
    description:
      - With O(catch_up), a file whose creation the catch-up follows (the window's final pull's
        C(<job_file>.ready), whose work before the stop may last longer than the catch-up, and what is written
        meanwhile would be the window's). While it is missing, catch-up passes follow each other, each
        moving what was written during the one before (two seconds apart at least); the pass
        that begins after it appeared is the last, so that the job is ready about when the play stops the
        origin. The gate's opening, a failed pass or O(catch_up_until_timeout) ends them too.
      - Without it, one catch-up pass.
    type: path
  catch_up_until_timeout:
    description:
      - Seconds after the first catch-up pass began when no other begins, with O(catch_up_until) (the file
        may never come, when the job that makes it failed or the run that started both died before the stop). The
        play gives the time it waits for the jobs before the origin's stop.
    type: float
    default: 300
  progress_interval:
    description:
      - Seconds between two progress reports of a pass that is still running, V(0) for none.
      - As for M(bluemind.migration.bluemind_sync), the action plugin of this module starts the pass
        asynchronously on the target and prints, every O(progress_interval) seconds, one line per
        database being copied whole (bytes of the dump moved, percent of the origin's table data,
        rate, estimated time left); the first report comes after 10 s (or O(progress_interval) when
        shorter). A database brought up to date row by row gets one line when it ends.
      - The module writes the same figures to O(progress_path) while it runs and returns the last
        ones in RV(progress). With V(0), with C(async) on the task or in check mode, the task runs as
        any other module.
    type: int
    default: 30
  progress_path:
    description:
      - File on the target where the pass's progress is written as JSON while it runs (the same
        layout as M(bluemind.migration.bluemind_sync)'s, C(job) V(databases), one entry a database
        with C(files) null), replaced whole each time. Not written in check mode.
    type: path
    default: /run/bluemind-migration/db-progress.json
  readdress_to:
    description:
      - The target's own address, for a DNS switch. Once every database is verified (and before the
        pass records its ids), the copied rows of database O(readdress_database) that name one of
        O(readdress_from) are given this address, as M(bluemind.migration.bluemind_readdress) does with
        C(parts=[database]) (C(t_server), C(t_systemconf), the webmail's C(rc_users)). The pass then
        ends with the target's records in place, and the window has no step of its own for them.
      - Not with O(origin_serving) (the hot phase's copy is not the one that serves); not in check mode.
    type: str
  readdress_database:
    description: The database that holds the server directory, the system configuration and the webmail profiles.
    type: str
    default: bj
  buckets_from_rows:
    description:
      - In a pass after a whole copy, a table with a key that the target did not change since the last pass,
        but whose rows the origin may have deleted, is counted by buckets of keys when it holds at least
        this many rows on the origin (see RV(databases[].tables_by_buckets)).
      - A smaller one is one bucket when the origin's statistics prove nothing (its row counts, read by
        the pass anyway, tell whether it changed besides the rows written since), else it is listed key by
        key whole, which then costs less than the two more statements and the second listing, but when its
        key is made of integers (see RV(databases[].tables_by_fine_buckets)).
    type: int
    default: 8192
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.pg
  - bluemind.migration.pg.maintenance
  - bluemind.migration.ssh
  - bluemind.migration.lock
  - bluemind.migration.gate
  - bluemind.migration.job
  - bluemind.migration.readdress
attributes:
  check_mode:
    support: partial
    details:
      - Opens the tunnel and reads both sides. With O(mode=sync) it finds which rows would move
        and reports them (RV(databases[].rows_copied), RV(databases[].rows_deleted)), with
        C(changed) V(false) when none would; the target is not touched.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Stop BlueMind on the target first, a database in use there cannot be dropped. The origin may
    still serve; the last pass, with BlueMind stopped on the origin, makes the copy final.
  - BlueMind's own schemas and code create no large objects (its binary columns are C(bytea)), so
    their comparison reads an empty catalog. Large objects that something else keeps changing in
    BlueMind's databases make every pass a whole copy; their contents are read on both sides at
    every pass (in parts of 1 MiB, so an object of any size can be compared).
  - O(db_user) is the user on both servers and the owner of the databases created on the target; it must
    be allowed to create databases there (BlueMind's C(bj) is a superuser). O(pg_bin_dir) holds the
    target's C(pg_dump) and C(psql), the newer ones.
  - Reading large objects needs O(db_user) to be a superuser or to have C(SELECT) on each of them, as
    C(pg_dump) does.
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Copy the databases ahead of the window, then again with only the rows that changed
  bluemind.migration.bluemind_db_transfer:
    origin_host: 192.0.2.10
    ssh_key: /root/.ssh/bluemind_migration
    known_hosts: /root/.ssh/bluemind_migration_known_hosts
    origin_db_password: "{{ bluemind_db_password }}"
    target_db_password: "{{ bluemind_db_password }}"
    state_file: /var/lib/bluemind-migration/db-sync.json
  no_log: true

- name: Move bj and bj-data from the origin (PostgreSQL 13) to the target (PostgreSQL 15)
  bluemind.migration.bluemind_db_transfer:
    origin_host: 192.0.2.10
    ssh_key: /root/.ssh/bluemind_migration
    known_hosts: /root/.ssh/bluemind_migration_known_hosts
    origin_db_password: "{{ bluemind_db_password }}"
    target_db_password: "{{ bluemind_db_password }}"
    pg_bin_dir: /usr/lib/postgresql/15/bin
  no_log: true
"""

RETURN = r"""
waited_for_lock:
  description: Seconds waited for a database pass left running on the target (see O(lock_dir)).
  returned: success
  type: float
  sample: 0.0
waited_for_gate:
  description: Seconds waited at the gate (see O(gate_path)) once the connections were open; 0 without one.
  returned: success
  type: float
  sample: 0.4
catch_up:
  description:
    - The pass run before the gate with O(catch_up), while the origin served; its databases' entries have the
      keys of RV(databases) (a row sync's counts, its method and seconds).
  returned: when O(catch_up) ran
  type: dict
  contains:
    started_at:
      description: When it began (UTC, ISO 8601).
      type: str
    seconds:
      description: Its length, the lock's wait included.
      type: float
    databases:
      description: One entry per database, as RV(databases) has them.
      type: list
      elements: dict
    error:
      description: Why it failed, when it did (the window's pass went on).
      type: str
    passes:
      description: How many passes ran (more than one with O(catch_up_until)); the other keys are the last one's.
      type: int
    first_seconds:
      description: The first pass's length (the others move only what was written during the one before).
      type: float
databases:
  description: One entry per database.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Database name.
      type: str
      sample: bj-data
    origin_size:
      description: Size of the database on the origin (C(pg_database_size)), in bytes.
      type: int
    settings:
      description: Database-level settings carried over, as C(name=value).
      type: list
      elements: str
      sample: [TimeZone=GMT]
    locale:
      description: C(LC_COLLATE) and C(LC_CTYPE) of the origin's database, given to the target's copy.
      type: dict
      contains:
        collate:
          description: C(LC_COLLATE).
          type: str
          sample: en_US.UTF-8
        ctype:
          description: C(LC_CTYPE).
          type: str
          sample: en_US.UTF-8
    extensions:
      description: The origin database's extensions, each with the schema the target's copy gets it in.
      type: list
      elements: dict
      sample: [{name: hstore, schema: pg_catalog}, {name: plpgsql, schema: pg_catalog}]
    method:
      description: V(rows) when only differing rows moved, V(full) when the database was copied whole.
      type: str
      sample: rows
    reason:
      description: Why the database was copied whole.
      type: str
      returned: when RV(databases[].method=full)
      sample: no copy on the target yet (the last whole copy did not finish)
    compared_by:
      description: V(content) (row hashes) or V(transaction ids) (the last pass's ids, see O(state_file)).
      type: str
      returned: when RV(databases[].method=rows)
    rows_copied:
      description: Rows copied from the origin by the row sync (or that would be, in check mode). In a table
        without a key, rows with the same content count once.
      type: int
      returned: when RV(databases[].method=rows)
    rows_deleted:
      description: Rows deleted on the target by the row sync, changed rows included. In a table without a
        key, rows with the same content count once.
      type: int
      returned: when RV(databases[].method=rows)
    tables_changed:
      description: Tables where rows moved.
      type: int
      returned: when RV(databases[].method=rows)
    tables_skipped:
      description: Tables not listed, their statistics on both sides being those the last pass kept.
      type: int
      returned: when RV(databases[].method=rows)
    tables_listed:
      description: Tables listed on both sides (not empty on both sides, not skipped).
      type: int
      returned: when RV(databases[].method=rows)
    tables_by_changes:
      description:
        - Of RV(databases[].tables_listed), the tables with a key that deleted no row on the origin
          since the last pass and did not change on the target (their statistics say so), so only the
          keys of their rows written since the last pass were listed, and those rows replaced on the
          target. Each such table's row count is checked against the origin's before the target's
          transaction commits. Always 0 in check mode, which lists every table whole.
      type: int
      returned: when RV(databases[].method=rows)
    tables_by_buckets:
      description:
        - Of RV(databases[].tables_listed), the other tables with a key that did not change on the
          target since the last pass (the target's statistics say so; the origin may have deleted
          rows, or its statistics prove nothing) with at least O(buckets_from_rows) rows on the origin,
          or with fewer when the origin's statistics prove nothing (one bucket, no statement to count it).
          The keys of their rows written since the last pass
          were listed, each side counted its rows by bucket of keys (the origin only the rows written
          before the last pass), and only the buckets counted differently were listed key by key.
          Each such table's row count is checked against the origin's before the target's transaction
          commits. Always 0 in check mode.
        - Smaller tables whose key is made of integers and that lost rows on the origin (its statistics
          say so) are among them, cut into finer buckets (RV(databases[].tables_by_fine_buckets)).
        - With O(origin_serving), every table the target left untouched (its statistics say so).
      type: int
      returned: when RV(databases[].method=rows)
    tables_by_fine_buckets:
      description:
        - Of RV(databases[].tables_by_buckets), the tables with fewer than O(buckets_from_rows) rows (but
          at least 64) whose key is made of integers and that lost rows on the origin since the last pass,
          when its statistics prove it (with O(origin_serving), when the origin's statistics read before the
          pass's snapshot say so, a guess that only chooses how to count), cut into buckets of about 8 rows, each counted at the cost of a few
          integer operations a row, where listing such a table whole hashes and sorts every row on both
          sides (BlueMind's change-set partitions lose an item's rows at each of its changes).
      type: int
      returned: when RV(databases[].method=rows)
    tables_recounted:
      description:
        - Tables listed by their changes whose count differed at the apply (a key changed by an
          update, which no deletion counter sees); the target's transaction was rolled back, those
          tables listed whole and the changes applied again.
      type: int
      returned: when a count differed
    vacuum_seconds:
      description:
        - Time to VACUUM the target's tables that a pass while the origin serves wrote (out of the window),
          so that the window's first reads of them do not set every new row's hint bits.
      type: float
      returned: after a row sync that changed tables while the origin serves
    vacuum_error:
      description: Why that VACUUM failed (the pass is done and verified all the same).
      type: str
      returned: when the VACUUM failed
    target_read_ahead:
      description:
        - Whether the target's side of the row sync (its row counts, catalogs, copies and columns) was read
          before the gate, out of the window, and taken as read (its transaction ids had not moved since).
      type: bool
      returned: when O(mode=sync)
    listings_read_ahead:
      description:
        - Statements of the row sync's first listing whose target side was read before the gate (the keys
          written since the last pass and the rows counted by bucket, of each table with rows there) and
          taken from that reading in the window, its transaction ids not having moved. Stopped
          when the gate opens, the reading keeps what it finished; the window runs the rest.
      type: int
      returned: when the databases were compared row by row
    listings_kept_by_signature:
      description:
        - When the target's transaction ids moved between that reading and the gate (an autovacuum's ANALYZE
          is enough), the statements of that reading kept all the same, those of the tables whose
          signatures on the target (see the tables' statistics) were the same before the reading and at
          the window's check. The others are run again in the window.
      type: int
      returned: when the target's side read before the gate was read again
    check_seconds:
      description: Time to read both sides' table signatures and decide which tables to skip.
      type: float
      returned: when RV(databases[].method=rows)
    listing_seconds:
      description: Time to list the tables not skipped on both sides and merge the listings.
      type: float
      returned: when RV(databases[].method=rows)
    prepare_seconds:
      description:
        - Time from the start of the database's pass to its first listing query (the statistics mark,
          the snapshot, the origin's state in it, both schemas and the target's state).
      type: float
      returned: when RV(databases[].method=rows)
    apply_seconds:
      description: Time to apply the listed changes on the target (one transaction, counts checked before the commit).
      type: float
      returned: when RV(databases[].method=rows) and not in check mode
    verify_seconds:
      description: Time to read the target's state once the changes or the copy are in and compare it with the origin's.
      type: float
      returned: when not in check mode
    tables_counted_at_commit:
      description:
        - The tables whose row count the row sync's transaction checked against the origin's before it
          committed (those planned from their changed rows or by buckets); the comparison after the commit
          takes their counts from that check instead of counting them again (a count scans the table).
      type: int
      returned: when not in check mode
    tables_counted_by_buckets:
      description:
        - The origin's tables that the pass did not count before its listing, because the listing counted
          their rows anyway (by bucket the rows older than the last pass, and those written since, in the
          pass's snapshot). Chosen from the target's side read before the gate (the tables it would list by
          buckets); one listed otherwise is counted apart, one proven unchanged takes the target's count.
      type: int
      returned: when RV(databases[].method=rows)
    schemas_compared_by:
      description:
        - V(dumps) when both schemas were dumped and compared, V(catalogs) when both sides' catalogs were
          found as the last pass that compared them left them (no dump).
      type: str
      returned: when the target had a copy with the same settings, locale and extensions
      sample: catalogs
    skip_blocker:
      description: Why no table could be skipped (every table was listed).
      type: str
      returned: when RV(databases[].method=rows) and no table could be skipped
      sample: on the origin, the server was restarted since the last pass
    bytes:
      description: Size of the dump, or of the rows, streamed from the origin to the target.
      type: int
      returned: when not in check mode
    seconds:
      description: Time to recreate, restore and verify the database.
      type: float
      returned: when not in check mode
    tables:
      description: Tables compared.
      type: int
      returned: when not in check mode
    rows:
      description: Rows in all tables (the same on both sides).
      type: int
      returned: when not in check mode
    sequences:
      description: Sequences compared.
      type: int
      returned: when not in check mode
    large_objects:
      description: Large objects compared (the same on both sides).
      type: int
      returned: when not in check mode
bytes:
  description: Sum of RV(databases[].bytes).
  returned: always
  type: int
seconds:
  description: Time of the whole task.
  returned: always
  type: float
progress:
  description:
    - The last progress figures, as written to O(progress_path). C(job), C(finished), and C(trees), one
      entry a database with C(path) its name, C(state), C(bytes), C(size_bytes), C(percent), C(rate),
      C(eta) and C(seconds), as M(bluemind.migration.bluemind_sync) gives them for a tree.
  returned: unless O(progress_interval=0)
  type: dict
started_at:
  description: When the task began, on the target's clock (UTC, as the migration state keeps times); with
    O(gate_path), when the gate opened (and RV(seconds) counts from there).
  returned: success
  type: str
  sample: "2026-11-29T18:00:00.000000Z"
ended_at:
  description: When the task ended, on the target's clock (UTC). With RV(started_at), the step in the report's timeline.
  returned: success
  type: str
  sample: "2026-11-29T18:00:12.000000Z"
tables:
  description: Sum of RV(databases[].tables).
  returned: always
  type: int
rows:
  description: Sum of RV(databases[].rows).
  returned: always
  type: int
origin_version:
  description: PostgreSQL version of the origin's server.
  returned: always
  type: str
  sample: "13.16"
target_version:
  description: PostgreSQL version of the target's server.
  returned: always
  type: str
  sample: "15.8"
readdress:
  description:
    - What O(readdress_to) set, as M(bluemind.migration.bluemind_readdress) returns it. C(server) (rows of
      C(t_server) and C(t_systemconf) that named an old address) and C(webmail) (C(moved), C(blocked),
      C(table)).
  returned: when O(readdress_to) is set and every database was verified
  type: dict
  sample: {"server": {"t_server": 1, "t_systemconf": 1}, "webmail": {"moved": 12, "blocked": 0, "table": true}}
executed_commands:
  description: Commands and SQL scripts run on the target (no password appears in them).
  returned: always
  type: list
  elements: str
"""

import concurrent.futures
import functools
import hashlib
import json
import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.lock import (
    LockBusy,
    acquire,
    lock_argument_spec,
    lock_path,
    release,
)
from ansible_collections.bluemind.migration.plugins.module_utils.pg import (
    BUILTIN_SCHEMAS,
    EXTENSIONS_SQL,
    PgError,
    PgServer,
    alter_database_set,
    create_extension_sql,
    missing_requirements,
    pg_argument_spec,
    pg_maintenance_argument_spec,
    quote_ident,
    quote_literal,
    stream_pipeline,
    trouble,
)
from ansible_collections.bluemind.migration.plugins.module_utils.progress import (
    ProgressBoard,
    TreeProgress,
)
from ansible_collections.bluemind.migration.plugins.module_utils.pgsync import (
    bucket_number,
    facts_sql,
    table_counts_sql,
    IDENTITY_SQL,
    TABLE_COLUMNS_SQL,
    FINE_BUCKETS_FROM_ROWS,
    TABLE_DATA_SIZE_SQL,
    ReadAhead,
    Recount,
    RowSync,
    RowSyncError,
    ahead_statements,
    balanced_groups,
    Snapshot,
    tables_of,
    normalize_schema,
)
from ansible_collections.bluemind.migration.plugins.module_utils.pgsignature import (
    APP_NAME,
    SHARED_MEMORY_STATS,
    UNCOUNTED_READS,
    losing_tables,
    side_signatures,
    signature_sql,
    table_changes,
    unwritten_tables,
)
from ansible_collections.bluemind.migration.plugins.module_utils.state import stamp
from ansible_collections.bluemind.migration.plugins.module_utils import gate, jobs, readdress
from ansible_collections.bluemind.migration.plugins.module_utils.ssh import (
    OriginSsh,
    SshError,
    Tunnel,
    free_local_port,
    ssh_argument_spec,
)

MAX_LISTED_DIFFERENCES = 10
# A whole copy is restored under this name and renamed when complete (NAMEDATALEN - 1 bytes at most).
INCOMPLETE_SUFFIX = ".incomplete"
MAX_NAME_BYTES = 63
# Sessions listing tables at once on each side (each lists a group of tables of about the same size).
PLAN_WORKERS = 3
# Seconds between the starts of two catch-up passes at least (see O(catch_up_until)).
CATCH_UP_PERIOD = 2.0


class Transfer(object):
    """The work on one pair of servers; ``commands`` records what ran."""

    def __init__(self, module, origin, target):
        self.module = module
        self.run = module.run_command
        self.origin = origin
        self.target = target
        self.maintenance_db = module.params["maintenance_db"]
        self.owner = module.params["db_user"]
        self.commands = []
        self.state = {}
        self.verified = {}
        self.marks = {}
        self.catalogs = {}  # name: both sides' catalog digests, when this pass found the schemas the same
        self.dump_version = None  # pg_dump --version, part of what a schema dump's text depends on
        self.origin_checks = {}  # name: the origin's check, read beside the pass's first reads
        self.origin_serving = module.params.get("origin_serving", False)
        self.buckets_from_rows = module.params.get("buckets_from_rows", 8192)
        self.versions = {}
        self.superusers = {}  # label: whether this module's user is a superuser there
        self.progress = {}  # name: TreeProgress, when the pass reports its progress
        self.ahead = {}  # name: the target's side read before the gate (see read_target_ahead)
        self.listings_ahead = {}  # name: ReadAhead of the target's first listing, until the gate opens
        self.listings_read = {}  # name: what those read (statement -> lines), while the target is as read
        # name: what those read when the target's transaction ids moved since (an autovacuum's ANALYZE is
        # enough), and (the target's signatures read before them, each statement's table): the window keeps
        # the statements of the tables whose signatures did not move (see proven_listings)
        self.listings_unproven = {}
        self.ahead_proof = {}
        self.target_checks = {}  # name: the target's signatures read by the window's check (see unchanged)

    def for_next_pass(self):
        """A Transfer for another pass over the same connections: what is known of the servers (their versions,
        whose superuser this module's user is, pg_dump's version), the commands run so far and the state as
        this pass leaves it (the ids and signatures it recorded) are kept; nothing of this pass's own."""
        following = Transfer(self.module, self.origin, self.target)
        following.commands, following.dump_version = self.commands, self.dump_version
        following.versions, following.superusers = dict(self.versions), dict(self.superusers)
        following.state = dict(self.state)
        return following

    def version(self, server):
        """The server's version; its number and whether this module's user is a superuser there are kept."""
        text, number, superuser = server.query(
            self.run, self.maintenance_db, "SELECT current_setting('server_version'), "
            "current_setting('server_version_num'), current_setting('is_superuser')", "reading the version")[0]
        self.versions[server.label] = int(number)
        self.superusers[server.label] = superuser == "on"
        return text

    def signature_query(self, server, check):
        """The query of one database's table signatures on ``server`` (see pgsignature)."""
        return signature_sql(check, server.label == "origin",
                             self.versions.get(server.label, SHARED_MEMORY_STATS) < SHARED_MEMORY_STATS)

    @staticmethod
    def signatures_read(raw, check):
        """The signatures in ``raw`` (the query's JSON), or None when it holds none."""
        try:
            return side_signatures(raw, check)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None

    def signatures(self, server, name, check):
        """One database's table signatures on ``server`` (see pgsignature): a mark (``check`` False) or a
        check, which waits for the database to be quiet. None when they cannot be read (the pass then
        lists every table, as without them, and its own reads say what went wrong)."""
        try:
            # the server's own track_counts, not the one of this module's reads (see UNCOUNTED_READS)
            raw = server.query(self.run, name, self.signature_query(server, check), "reading the tables' statistics",
                               own_options=False)[0][0]
        except (PgError, IndexError):
            return None
        return self.signatures_read(raw, check)

    def inspect(self, name):
        """What the origin holds for one database: size, database-level settings, locale, extensions."""
        rows = self.origin.query(
            self.run, self.maintenance_db,
            "SELECT pg_database_size(datname), datcollate, datctype FROM pg_database WHERE datname = %s"
            % quote_literal(name), "reading the size and locale of %s" % name)
        if not rows:
            raise PgError("database %s does not exist on the origin (%s): check databases" % (
                name, self.origin.label))
        extensions = [dict(name=row[0], schema=row[1]) for row in self.origin.query(
            self.run, name, EXTENSIONS_SQL, "listing the extensions of %s" % name)]
        return dict(name=name, origin_size=int(rows[0][0]), settings=self.settings(self.origin, name),
                    locale=dict(collate=rows[0][1], ctype=rows[0][2]), extensions=extensions)

    def check_target(self, entries):
        """Fail, before anything changes, when the target's server lacks an extension or a locale
        that the origin's databases use."""
        problems = missing_requirements(
            self.target, self.run, self.maintenance_db,
            [ext["name"] for entry in entries for ext in entry["extensions"]],
            [entry["locale"][key] for entry in entries for key in ("collate", "ctype")])
        if problems:
            raise PgError("the target cannot hold a copy of %s: %s. Nothing was changed on the target" % (
                ", ".join(entry["name"] for entry in entries), "; ".join(problems)))

    def settings(self, server, name):
        rows = server.query(
            self.run, self.maintenance_db,
            "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d "
            "ON d.oid = s.setdatabase WHERE s.setrole = 0 AND d.datname = %s ORDER BY 1" % quote_literal(name),
            "reading the settings of %s" % name)
        return [row[0] for row in rows]

    def execute(self, database, script, what):
        self.commands.append("psql -d %s: %s" % (database, script.strip()))
        self.target.execute(self.run, database, script, what)

    def copy(self, entry, snapshot=None):
        """Drop the target's database, restore the origin's dump into a new one under a temporary name,
        and give it the database's name once the restore succeeded: a copy that did not finish is
        never found under the database's name (a later pass copies whole again, it cannot take a half
        copy for an earlier one)."""
        name = entry["name"]
        partial = incomplete_name(name)
        self.state.pop(name, None)  # the last pass's ids name the copy about to be dropped
        self.catalogs.pop(name, None)  # nor are its catalogs the ones compared
        self.execute(self.maintenance_db, "\n".join(
            ["DROP DATABASE IF EXISTS %s;" % quote_ident(name),
             "DROP DATABASE IF EXISTS %s;" % quote_ident(partial),
             "CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE %s LC_CTYPE %s;" % (
                 quote_ident(partial), quote_ident(self.owner), quote_literal(entry["locale"]["collate"]),
                 quote_literal(entry["locale"]["ctype"]))]
            + [alter_database_set(partial, setting) for setting in entry["settings"]]),
            "recreating database %s (stop BlueMind on the target first)" % name)
        # The dump names a type of pg_catalog without its schema: the extension must be there first.
        extensions = [create_extension_sql(ext["name"], ext["schema"])
                      for ext in entry["extensions"] if ext["schema"] in BUILTIN_SCHEMAS]
        if extensions:
            self.execute(partial, "\n".join(extensions),
                         "creating the origin's extensions in %s in their schemas" % name)
        dump, restore = self.origin.dump_args(name, snapshot), self.target.psql_args(partial) + ["-f", "-"]
        self.commands.append("%s | %s" % (" ".join(dump), " ".join(restore)))
        progress = self.progress.get(name)
        if progress is not None:
            rows = self.origin.query(self.run, name, TABLE_DATA_SIZE_SQL, "measuring the tables of %s" % name)
            progress.sized(None, int(rows[0][0]) if rows else None)
        size, dump_rc, restore_rc, dump_err, restore_err = stream_pipeline(
            dump, self.origin.tool_env(), restore, self.target.tool_env(),
            on_bytes=(lambda moved: progress.update(moved, None, None)) if progress is not None else None)
        if dump_rc != 0 or restore_rc != 0:
            # what the target's psql says first: when it stops, pg_dump is stopped too
            side, messages = (self.target, restore_err) if restore_rc != 0 and restore_err else (self.origin, dump_err)
            hint = side.trouble_hint(messages, self.run, partial) or "fix the cause and run the task again"
            raise PgError(
                "copy of database %s failed (pg_dump exit %s, psql exit %s): %s; %s. %s" % (
                    name, dump_rc, restore_rc, restore_err or dump_err or "no message", hint,
                    self.drop_incomplete(name, partial)))
        self.execute(self.maintenance_db, "ALTER DATABASE %s RENAME TO %s;" % (quote_ident(partial), quote_ident(name)),
                     "naming the complete copy %s" % name)
        entry.update(method="full", bytes=size)

    def drop_incomplete(self, name, partial):
        """Drop the copy that did not finish (its space is given back); say what the target holds."""
        try:
            self.target.execute(self.run, self.maintenance_db, "DROP DATABASE IF EXISTS %s;" % quote_ident(partial),
                                "dropping the incomplete copy %s" % partial)
            dropped = "the incomplete copy was dropped"
        except PgError:
            dropped = "the incomplete copy (database %s) is dropped by the next run" % partial
        return "The target holds no copy of %s now (%s); the next run copies it whole" % (name, dropped)

    def schema(self, server, name, snapshot=None):
        args = server.dump_args(name, snapshot, schema_only=True)
        rc, out, err = self.run(args, environ_update=server.tool_env())
        if rc != 0:
            raise PgError("reading the schema of %s on the %s failed (pg_dump exit %s): %s" % (
                name, server.label, rc, (err or "").strip() or "no message"))
        return normalize_schema(out)

    def facts(self, server, name, snapshot=None, counted_apart=(), catalogs=True):
        """What a pass compares of one database, in one query (see FACTS_SQL), without the row counts of the
        tables ``counted_apart``, and without the catalogs' digest unless ``catalogs``."""
        return json.loads(server.query(self.run, name, facts_sql(counted_apart, catalogs), "reading the database's state",
                                       snapshot)[0][0])

    def facts_if_any(self, server, name):
        """The facts of a database that may not exist (nor accept connections): None then."""
        try:
            return self.facts(server, name)
        except PgError:
            return None

    def read_target_ahead(self, name):
        """Before the gate, while the origin still serves: the target's side of a row sync (its facts, copies
        and columns), which the window then takes as they are when the target did not change since
        (:meth:`target_side`). Nothing when they cannot be read: the pass reads them in the window then."""
        try:
            # the target's signatures first: a table whose own did not move by the window's check holds what
            # its listings read below, whatever else wrote to the database
            mark = self.signatures(self.target, name, False)
            facts, found, columns = self.read_target(name)
        except PgError:
            return
        if facts is not None and columns is not None:
            self.ahead[name] = (facts, found, columns)
            # the target's side of the first listing too, when the last pass's record names this copy
            target_since = self.kept_since(name, "target", facts)
            if target_since is not None:
                # each statement names one table: their tables, in the order of the statements
                table_of = dict((sql, table.name) for table in tables_of(columns, facts.get("hash64") is True)
                                for sql in ahead_statements([table], facts["counts"], target_since, self.buckets_from_rows))
                self.ahead_proof[name] = (mark, table_of)
                self.listings_ahead[name] = ReadAhead(RowSync(self.origin, self.target, name, None), list(table_of),
                                                      PLAN_WORKERS)

    def wait_reading_ahead(self):
        """Return once every listing read ahead ended (read whole, failed, or stopped at the gate)."""
        for reading in list(self.listings_ahead.values()):
            reading.join()

    def stop_reading_ahead(self):
        """The gate opened: stop reading the target's listings and keep what was read."""
        for name, reading in list(self.listings_ahead.items()):
            self.listings_read[name] = reading.stop()
        self.listings_ahead.clear()

    def read_target(self, name):
        """The target's facts (None without a copy), copies and columns, read side by side."""
        return tuple(in_parallel([functools.partial(self.facts_if_any, self.target, name),
                                  functools.partial(self.target_copies, name),
                                  functools.partial(self.target_columns, name)]))

    def target_side(self, name):
        """``(facts, copies, columns, read_ahead)`` of the target: those read ahead when its transaction ids
        say that nothing wrote to it since (its BlueMind is stopped before the jobs start, but anything else
        may have written: autovacuum's ANALYZE, an operator), else read now."""
        early = self.ahead.pop(name, None)
        if early is not None:
            facts = early[0]
            try:
                same = self.identity(self.target, name) == (facts["ident"], int(facts["xmin"]), int(facts["xmax"]))
            except PgError:
                same = False
            if same:
                return early + (True,)
        # the target moved: its listings are kept for the tables that its signatures show unwritten
        self.listings_unproven[name] = self.listings_read.pop(name, None)
        return self.read_target(name) + (False,)

    def target_copies(self, name):
        """``{database: "t" when invalid, else "f"}`` of the target's copy of ``name`` and its incomplete
        copy, those that exist. datconnlimit -2: a DROP DATABASE interrupted (PostgreSQL 15.4 and later),
        which leaves a database nobody can connect to; DROP DATABASE removes it."""
        return dict(self.target.query(
            self.run, self.maintenance_db, "SELECT datname, datconnlimit = -2 FROM pg_database WHERE datname IN (%s, %s)"
            % (quote_literal(name), quote_literal(incomplete_name(name))), "looking for %s" % name))

    def row_sync_blocker(self, entry, snapshot, origin, target_facts=None, found=None):
        """Why the target's copy of a database cannot be brought up to date row by row, or None;
        with the target's state when it can. ``origin``: the origin's FACTS_SQL in ``snapshot``;
        ``target_facts``, ``found``: the target's facts and :meth:`target_copies`, when already read."""
        name = entry["name"]
        partial = incomplete_name(name)
        found = self.target_copies(name) if found is None else found
        if name not in found:
            return "no copy on the target yet%s" % (
                " (the last whole copy did not finish)" if partial in found else ""), None
        if found[name] == "t":
            return "the target's copy is invalid (a DROP DATABASE of it was interrupted)", None

        def dumps():
            return in_parallel([lambda: self.schema(self.origin, name, snapshot), lambda: self.schema(self.target, name)])

        kept = (self.state.get(name) or {}).get("catalogs") or {}
        same_origin = origin.get("catalogs") is not None and kept.get("origin") == origin.get("catalogs") \
            and kept.get("versions") == self.schema_versions()

        def target_now():
            return target_facts if target_facts is not None else self.facts(self.target, name)

        if same_origin:
            # the origin's schema is the one the last pass compared: the target's may be too
            target = target_now()
            if target.get("catalogs") is not None and target.get("catalogs") == kept.get("target"):
                theirs = ours = None
                entry["schemas_compared_by"] = "catalogs"
            else:
                theirs, ours = dumps()
        else:
            (theirs, ours), target = in_parallel([dumps, target_now])
        if theirs is not None:
            entry["schemas_compared_by"] = "dumps"
        if target["settings"] != entry["settings"]:
            return "the database settings differ", None
        if target["locale"] != [entry["locale"]["collate"], entry["locale"]["ctype"]]:
            return "the locales differ (origin %s/%s, target %s/%s)" % (
                entry["locale"]["collate"], entry["locale"]["ctype"], target["locale"][0], target["locale"][1]), None
        if extension_set(target["extensions"]) != extension_set(entry["extensions"]):
            return "the extensions differ", None
        if theirs is not None and theirs != ours:
            at = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
            return "the schemas differ (origin: %r, target: %r)" % (
                theirs[at] if at < len(theirs) else "end", ours[at] if at < len(ours) else "end"), None
        if target["large_objects"] != origin["large_objects"]:
            # pg_dump carries large objects, the row sync only tables: the whole copy carries them
            return "the large objects differ (%s; the row sync moves table rows only)" % (
                large_objects_text(origin["large_objects"], target["large_objects"])), None
        if origin.get("catalogs") is not None and target.get("catalogs") is not None:
            self.catalogs[name] = dict(origin=origin["catalogs"], target=target["catalogs"], versions=self.schema_versions())
        return None, target

    def save_records(self, path):
        """:meth:`record_state`, then the state written to ``path``; the errors of both (none: all recorded)."""
        problems = self.record_state()
        try:
            save_state(path, self.state)
        except (IOError, OSError) as exc:
            problems.append(exc)
        return problems

    def schema_versions(self):
        """What a schema dump's text also depends on: both servers' versions and the pg_dump that reads them."""
        return [self.versions.get("origin"), self.versions.get("target"), self.dump_version]

    def record_state(self):
        """The ids of the databases verified in this pass. The target's are read once every database is
        done, so that no transaction of this pass still runs and holds the target's horizon back.
        Return the errors of those that could not be read (their entries are left as they were)."""
        def read(name):
            try:
                target_now = self.identity(self.target, name)
            except PgError as exc:  # the entry stays as the last pass left it, or absent after a whole copy
                return exc
            entry = dict(origin=self.verified[name], target=[target_now[0], target_now[1]])
            # the target's signatures, once this pass's writes are counted there (no other session connected)
            mark, record = self.marks.get(name), self.signatures(self.target, name, True)
            if mark is not None and record is not None:
                entry["signatures"] = dict(origin=mark, target=record)
            if name in self.catalogs:
                entry["catalogs"] = self.catalogs[name]
            self.state[name] = entry
            return None

        names = list(self.verified)
        return [error for error in in_parallel([functools.partial(read, name) for name in names]) if error is not None]

    def identity(self, server, name, snapshot=None):
        """``(cluster/timeline/database ids, oldest running transaction, next transaction)``."""
        ident, xmin, xmax = server.query(self.run, name, IDENTITY_SQL, "reading transaction ids", snapshot)[0]
        return ident, int(xmin), int(xmax)

    def kept_since(self, name, side, facts):
        """The last pass's transaction id of ``side`` (``origin`` or ``target``), when its record names the
        database that ``facts`` describe and that database's ids did not go back; else None."""
        kept = (self.state.get(name) or {}).get(side)
        if not kept or kept[0] != facts["ident"] or int(kept[1]) > int(facts["xmax"]):
            return None
        return int(kept[1])

    def since(self, name, origin, target):
        """The last pass's transaction ids for both sides, when both are still the same databases."""
        origin_since, target_since = self.kept_since(name, "origin", origin), self.kept_since(name, "target", target)
        if origin_since is None or target_since is None:
            return None
        return origin_since, target_since

    def sync(self, entry, mode, apply_changes):
        """Bring one database on the target to the origin's content, as of one snapshot, and verify;
        its progress (when followed) runs from the start to the end, failed when the pass fails."""
        progress = self.progress.get(entry["name"])
        if progress is None:
            return self._sync(entry, mode, apply_changes)
        progress.start()
        try:
            self._sync(entry, mode, apply_changes)
        except BaseException:
            progress.end(failed=True)
            raise
        progress.end(moved_bytes=entry.get("bytes"))
        return None

    def _sync(self, entry, mode, apply_changes):
        name = entry["name"]
        started = time.monotonic()
        # read before the snapshot is exported (a write the snapshot does not see is not counted in it), by
        # the session that then exports it: one connection through the tunnel less
        marking = self.module.params.get("state_file")
        with Snapshot(self.origin, name, before=self.signature_query(self.origin, False) if marking else None) as snapshot:
            self.marks[name] = self.signatures_read(snapshot.before_result, False) if marking else None
            self.start_origin_check(name, mode)
            uncounted = set()  # the origin's tables whose rows the facts leave uncounted (see listed_apart)
            if mode == "full":
                origin = self.facts(self.origin, name, snapshot.id)
                reason, target = "mode=full", None
            else:
                uncounted = self.listed_apart(name)
                # both sides counted at once, and the target's copy and tables looked up beside them: the
                # target's state does not change before this pass writes it
                origin, (target_facts, found, columns, entry["target_read_ahead"]) = in_parallel([
                    functools.partial(self.facts, self.origin, name, snapshot.id, uncounted),
                    functools.partial(self.target_side, name)])
                reason, target = self.row_sync_blocker(entry, snapshot.id, origin, target_facts, found)
            counted = set()  # tables whose row count the row sync's commit checked (the origin's, in the snapshot)
            if reason is None:
                entry["prepare_seconds"] = seconds_since(started)
                try:
                    counted = self.sync_rows(entry, snapshot.id, apply_changes, self.since(name, origin, target),
                                             origin, target, columns, uncounted)
                except RowSyncError as exc:
                    if trouble(exc.messages):
                        # a full disk, a server gone: a whole copy would fail the same way, after dropping a
                        # copy that a rerun brings up to date row by row
                        server = self.target if exc.side == "target" else self.origin
                        raise PgError("row sync of %s failed: %s; %s. The target's copy of %s is unchanged (the "
                                      "changes apply in one transaction)" % (
                                          name, exc, server.trouble_hint(exc.messages, self.run, name), name))
                    reason = "row sync failed: %s" % exc
            if reason is not None:
                entry.update(method="full", reason=reason)
                # the whole copy is verified against every table's count
                self.count_apart(origin, name, snapshot.id, uncounted)
                if apply_changes:
                    self.copy(entry, snapshot.id)
            if apply_changes:
                if self.origin_serving:  # sequences moved on since the pass began: read them again
                    origin = dict(origin, sequences=self.facts(self.origin, name, snapshot.id, catalogs=False)["sequences"])
                begun = time.monotonic()
                # the counts that the commit checked are not read again (a large table's count is a scan)
                # what compare() reads: the catalogs' digest, kept from before the apply, is not read again
                target = self.facts(self.target, name, counted_apart=counted, catalogs=False)
                if counted:
                    target["counts"].update((table, origin["counts"][table]) for table in counted)
                entry.update(self.compare(name, origin, target))
                entry["tables_counted_at_commit"] = len(counted)
                entry["verify_seconds"] = seconds_since(begun)
                self.verified[name] = [origin["ident"], origin["xmin"]]
        entry["seconds"] = seconds_since(started)

    def listed_apart(self, name):
        """The tables whose rows the origin's facts leave uncounted, because its listing by buckets will count
        them (:meth:`RowSync.plan_tables`: its buckets' rows and those written since, in the snapshot): those
        the target's side read before the gate (its facts and columns) would have listed by buckets, many
        rows each (at scale l, counting them cost the window 1.3 s on the origin before any listing began).
        A table that the pass then lists otherwise, or not at all, is counted apart or proven as it was
        (:meth:`sync_rows`). None without that reading, or while the origin serves (no proof of any table)."""
        early = self.ahead.get(name)
        if early is None or self.origin_serving or not (self.state.get(name) or {}).get("signatures"):
            return set()
        facts, _found, columns = early
        mixed = set(table.name for table in tables_of(columns or [], facts.get("hash64") is True) if table.int_mix)
        return set(table for table, rows in facts["counts"].items() if int(rows) >= self.buckets_from_rows
                   or (table in mixed and int(rows) >= FINE_BUCKETS_FROM_ROWS))

    def count_apart(self, origin, name, snapshot, tables):
        """Count ``tables`` on the origin in ``snapshot`` into ``origin``'s counts (those the facts left out)."""
        missing = set(tables) - set(origin["counts"]) if tables else ()
        if missing:
            origin["counts"].update(json.loads(self.origin.query(
                self.run, name, table_counts_sql(missing), "counting tables", snapshot)[0][0]))

    def target_columns(self, name):
        """The target's tables as TABLE_COLUMNS_SQL gives them (name, columns, key), or None when its copy
        cannot be read (then none is synced row by row: row_sync_blocker says why)."""
        try:
            return self.target.query(self.run, name, TABLE_COLUMNS_SQL, "listing columns")
        except PgError:
            return None

    def sync_rows(self, entry, snapshot, apply_changes, since, origin, target, columns=None, uncounted=()):
        """The row sync of one database (``columns``: :meth:`target_columns`, read again when None);
        the tables whose row count the commit checked. The origin's facts left the rows of ``uncounted``
        uncounted (:meth:`listed_apart`): their counts are put into ``origin`` from their listing by
        buckets, from the proof that they changed on neither side (the target's then), or counted apart."""
        name = entry["name"]
        if columns is None:
            columns = self.target.query(self.run, name, TABLE_COLUMNS_SQL, "listing columns")
        tables = tables_of(columns, origin.get("hash64") is True and target.get("hash64") is True)
        # the origin's rows in the snapshot, the target's standing for those not counted yet (an estimate, by
        # which a table is cut into buckets: it holds many rows there)
        known = dict((table, int(rows)) for table, rows in target["counts"].items() if table in uncounted)
        known.update((table, int(rows)) for table, rows in origin["counts"].items())
        # Empty on both sides (the origin counted in the pass's snapshot): nothing to list. Most of
        # BlueMind's 256 change-set partitions are, and listing each costs two psql sessions.
        empty = set(table for table, rows in known.items()
                    if int(rows) == 0 and int(target["counts"].get(table, -1)) == 0)
        tables = [table for table in tables if table.name not in empty]
        begun = time.monotonic()
        skipped, undeleted, untouched, why = self.unchanged(name, since)
        entry["check_seconds"] = seconds_since(begun)
        entry.update(tables_skipped=len([table for table in tables if table.name in skipped]),
                     tables_listed=len([table for table in tables if table.name not in skipped]))
        if why:
            entry["skip_blocker"] = why
        tables = [table for table in tables if table.name not in skipped]
        # Listed by their changed rows alone, or by buckets (the other tables the target did not change):
        # only when the changes are applied, whose row counts prove the plan (a dry run lists them
        # whole, to say what would move).
        # A table without a key by buckets only: an update there is a content gone, which no deletion counts.
        planned = set(t.name for t in tables if t.name in target["counts"]) if apply_changes else set()
        by_changes = planned & undeleted & set(t.name for t in tables if t.key)
        # A small table is one bucket (counted by the facts read anyway) when the origin's statistics prove
        # nothing: most of such tables did not change, and the counts say so without a listing. When they
        # do prove something, a small table that is not undeleted lost rows: cut into fine buckets when its
        # key is made of integers (counted by bucket at the cost of a few integer operations a row; BlueMind's
        # change-set partitions), else listed whole at once.
        origin_blind = why is not None
        by_buckets = set(table for table in (planned & untouched) - by_changes
                         if origin_blind or int(known.get(table, 0)) >= self.buckets_from_rows)
        small = set(t.name for t in tables if t.int_mix
                    and FINE_BUCKETS_FROM_ROWS <= int(known.get(t.name, 0)) < self.buckets_from_rows)
        if not origin_blind:  # those that lost rows (proven: not undeleted)
            fine = small & ((planned & untouched) - by_changes)
        elif self.origin_serving:
            # those that lost rows as the origin's mark guesses (a guess: a table guessed wrong is only counted
            # otherwise, as one bucket, which is listed whole when its count differs)
            fine = small & planned & untouched & self.guessed_losing(name)
        else:
            fine = set()
        by_buckets |= fine
        # the tables left uncounted: those proven unchanged hold the target's rows (pass k verified both
        # equal); the listing of those counted by buckets counts them; the others are counted now
        origin["counts"].update((table, target["counts"][table]) for table in set(uncounted) & skipped
                                if table in target["counts"])
        by_counts = set(t.name for t in tables if since is not None and t.name in by_buckets and bucket_number(
            t, known.get(t.name, 0), target["counts"].get(t.name, 0), self.buckets_from_rows, t.name in fine) > 1)
        self.count_apart(origin, name, snapshot, set(uncounted) & set(t.name for t in tables) - by_counts)
        known.update((table, int(rows)) for table, rows in origin["counts"].items())
        entry.update(tables_by_changes=len(by_changes), tables_by_buckets=len(by_buckets), tables_by_fine_buckets=len(fine))
        ahead = self.listings_read.pop(name, None)
        if ahead is None:
            ahead = self.proven_listings(name)
            entry["listings_kept_by_signature"] = len(ahead)
        rows = RowSync(self.origin, self.target, name, snapshot, ahead=ahead)
        sizes = dict((table, (int(count), int(target["counts"].get(table, 0)))) for table, count in known.items())
        # a few sessions per side list every table, in groups of about the same size listed side by side
        rows_of = dict((table, ours + theirs) for table, (ours, theirs) in sizes.items())
        order = dict((table.name, i) for i, table in enumerate(tables))
        begun = time.monotonic()
        plans = sorted((plan for group in in_parallel([
            functools.partial(rows.plan_tables, group, since, by_changes, sizes, by_buckets, self.buckets_from_rows, fine)
            for group in balanced_groups(tables, rows_of, PLAN_WORKERS, by_changes | by_buckets)], PLAN_WORKERS)
            for plan in group), key=lambda plan: order[plan["table"].name])
        entry["listing_seconds"] = seconds_since(begun)
        entry["listings_read_ahead"] = rows.ahead_used
        for plan in plans:
            if plan["table"].name in by_counts:
                origin["counts"][plan["table"].name] = plan["counts"]["origin"]
        entry["tables_counted_by_buckets"] = len(set(uncounted) & by_counts)
        self.count_apart(origin, name, snapshot, uncounted)  # any left (none but by a change of this code)
        entry["compared_by"] = "content" if since is None else "transaction ids"
        sequences = [(seq, value, "t" if called else "f") for seq, value, called in origin["sequences"]]
        entry["bytes"] = 0
        if apply_changes:
            begun = time.monotonic()
            try:
                entry["bytes"] = rows.apply(plans, sequences)
            except Recount as exc:
                # a row gone from the origin that no deletion counted: those tables listed whole, then again
                again = [plans[number]["table"] for number in exc.numbers]
                entry["tables_recounted"] = len(again)
                whole = dict((plan["table"].name, plan) for plan in rows.plan_tables(again, since))
                plans = [whole.get(plan["table"].name, plan) for plan in plans]
                entry["bytes"] = rows.apply(plans, sequences)
            entry["apply_seconds"] = seconds_since(begun)
        changed = [p for p in plans if p["replace"] or p["fetch"] or p["delete"]]
        self.commands.append("row sync of %s: %s" % (name, ", ".join(
            "%s (%s)" % (p["table"].name, "replaced" if p["replace"] else "%d in, %d out" % (
                len(p["fetch"]), len(p["delete"]))) for p in changed) or "no row differs"))
        moved = [rows_moved(p) for p in changed]
        entry.update(method="rows", tables_changed=len(changed), rows_copied=sum(copied for copied, _gone in moved),
                     rows_deleted=sum(gone for _copied, gone in moved))
        if apply_changes and self.origin_serving:
            self.vacuum(entry, [p["table"].name for p in changed])
        # the tables whose row count the commit checked against the origin's (RowSync.apply): none in a dry run
        return set(p["table"].name for p in plans if p.get("expect") is not None) if apply_changes else set()

    def guessed_losing(self, name):
        """The tables that this pass's mark of the origin says lost rows since the last pass's (see
        pgsignature.losing_tables); none without both marks. Read while the origin serves, it proves nothing."""
        kept = ((self.state.get(name) or {}).get("signatures") or {}).get("origin")
        mark = self.marks.get(name)
        if not kept or not mark:
            return set()
        return losing_tables(kept, mark)

    def proven_listings(self, name):
        """The target's listings read ahead (statement -> lines) of the tables whose signatures the window's
        check (:meth:`unchanged`) found as they were before the reading, when the target's transaction ids
        moved since; none without both readings or with a reading that proves nothing."""
        unproven = self.listings_unproven.pop(name, None) or {}
        mark, table_of = self.ahead_proof.get(name, (None, {}))
        kept = unwritten_tables("target", mark, self.target_checks.get(name))
        return dict((sql, lines) for sql, lines in unproven.items() if table_of.get(sql) in kept)

    def vacuum(self, entry, tables):
        """VACUUM the target's ``tables`` that a pass wrote while the origin serves (out of the window).

        Rows written by the pass carry no hint bits (a table whose count the commit checked is not read
        again after it), so the first scan of the table after the commit checks each row's transaction
        and writes its page: that scan was the window's (t_mailbox_record's buckets counted in 2.8 s on
        the target, 0.6 s on the origin, at m). VACUUM does it now and leaves the signatures as they are
        (it writes no row: pgsignature). It analyzes them too: autovacuum's ANALYZE of a table the pass
        wrote otherwise came minutes later, once in the seconds before the window at scale l, and its
        transaction id made the window read the target's side again (see proven_listings). A VACUUM that
        fails is said and otherwise changes nothing."""
        if not tables:
            return
        begun = time.monotonic()
        try:
            self.target.execute(self.run, entry["name"], "VACUUM (ANALYZE) %s;\n" % ", ".join(sorted(tables)),
                                "vacuuming the tables this pass wrote")
        except PgError as exc:
            entry["vacuum_error"] = str(exc)
        entry["vacuum_seconds"] = seconds_since(begun)

    def start_origin_check(self, name, mode):
        """Start reading the origin's check in the background, once the snapshot is exported, when the
        pass may skip tables: before PostgreSQL 15 it waits some 0.6 s for a fresh statistics file,
        hidden behind the schema dumps and the target's reads."""
        self.origin_checks[name] = None
        if mode == "full" or self.origin_serving or not (self.state.get(name) or {}).get("signatures"):
            return
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.origin_checks[name] = pool.submit(self.signatures, self.origin, name, True)
        pool.shutdown(wait=False)

    def unchanged(self, name, since):
        """``(unchanged, undeleted, untouched, why)``: the tables that provably changed on neither side
        since the last pass, those that deleted no row on the origin and did not change on the target,
        and those that did not change on the target (read after the pass's snapshot was exported);
        or none and why (``untouched`` may hold tables then: the target's proof alone)."""
        if since is None:
            return set(), set(), set(), "no usable record of the last pass"
        kept = (self.state.get(name) or {}).get("signatures")
        if self.origin_serving:
            # BlueMind's sessions are connected to the origin: its statistics prove nothing. The target, where
            # no BlueMind runs, still proves its side: the tables it left untouched are counted by buckets
            # instead of listed whole (at scale l, a catch-up listed 1.25M keys of one table on both sides)
            target = self.signatures(self.target, name, True) if kept else None
            return set(), set(), unwritten_tables("target", (kept or {}).get("target"), target), "the origin still serves"
        if not kept:
            return set(), set(), set(), "the last pass left no statistics"
        checking = self.origin_checks.get(name)
        origin, target = in_parallel([checking.result if checking is not None else
                                      (lambda: self.signatures(self.origin, name, True)),
                                      lambda: self.signatures(self.target, name, True)])
        self.target_checks[name] = target
        if target is None:
            return set(), set(), set(), "the tables' statistics could not be read"
        return table_changes(kept, origin, target)

    def compare(self, name, origin, target):
        """Settings, locale, extensions, tables, row counts, sequences and large objects of the two copies (as
        FACTS_SQL reads them, the origin in the pass's snapshot); raise on any difference.

        The snapshot makes the origin's side exact even while BlueMind writes, but for sequences, which
        no snapshot holds: while the origin serves (``origin_serving``) they may be ahead there, never
        behind."""
        problems = []
        if target["settings"] != origin["settings"]:
            problems.append("settings: origin %s, target %s" % (origin["settings"], target["settings"]))
        if target["locale"] != origin["locale"]:
            problems.append("locale (LC_COLLATE/LC_CTYPE): origin %s, target %s" % (
                "/".join(origin["locale"]), "/".join(target["locale"])))
        ours, theirs = extension_set(origin["extensions"]), extension_set(target["extensions"])
        problems += ["extension %s in schema %s on the origin, %s on the target" % (
            name, schema, "in schema %s" % theirs[name] if name in theirs else "missing")
            for name, schema in sorted(ours.items()) if theirs.get(name) != schema]
        problems += ["extension %s (schema %s) only on the target" % (name, schema)
                     for name, schema in sorted(theirs.items()) if name not in ours]
        counts, target_counts = origin["counts"], target["counts"]
        problems += ["table %s only on the %s" % (t, side) for side, only in (
            ("origin", sorted(set(counts) - set(target_counts))),
            ("target", sorted(set(target_counts) - set(counts)))) for t in only]
        problems += ["%s: %s rows on the origin, %s on the target" % (t, counts[t], target_counts[t])
                     for t in sorted(counts) if t in target_counts and counts[t] != target_counts[t]]
        sequences = dict((seq, sequence_text(value, called)) for seq, value, called in origin["sequences"])
        target_sequences = dict((seq, sequence_text(value, called)) for seq, value, called in target["sequences"])
        problems += ["sequence %s: %s on the origin, %s on the target" % (s, v, target_sequences.get(s))
                     for s, v in sorted(sequences.items())
                     if v != target_sequences.get(s)
                     and not (self.origin_serving and sequence_behind(target_sequences.get(s), v))]
        if target["large_objects"] != origin["large_objects"]:
            problems.append("large objects: %s" % large_objects_text(origin["large_objects"], target["large_objects"]))
        if problems:
            raise PgError(
                "database %s differs after the copy (%d difference(s)): %s%s; was BlueMind still "
                "writing on the origin? Stop it and run the task again" % (
                    name, len(problems), "; ".join(problems[:MAX_LISTED_DIFFERENCES]),
                    " ..." if len(problems) > MAX_LISTED_DIFFERENCES else ""))
        return dict(tables=len(counts), rows=sum(int(c) for c in counts.values()), sequences=len(sequences),
                    large_objects=int(origin["large_objects"][0]))


def catch_up(transfer, databases, params):
    """The pass that O(catch_up) runs before the gate, while the origin serves (``transfer.origin_serving``):
    each database of ``databases`` (the entries :meth:`Transfer.inspect` read, copied) brought up to date and
    verified under the lock, which is given back after; its ids and signatures recorded in the state (on disk
    and in ``transfer.state``). Return what :data:`RETURN` says of ``catch_up``; a failure is said there and in a
    warning, never raised: the window's pass moves whatever it left."""
    begun, outcome = time.monotonic(), dict(started_at=stamp())
    entries = outcome["databases"] = [dict(entry) for entry in databases]
    path = lock_path(params, "db")
    problems = []
    try:
        outcome["waited_for_lock"] = acquire(path, params["lock_timeout"], "a database pass")
        try:
            in_parallel([functools.partial(transfer.sync, entry, params["mode"], True) for entry in entries])
        finally:
            # what it verified is recorded, as any pass's (a database it did not is left as it was)
            problems = transfer.save_records(params["state_file"])
            release(path)
    except (SshError, PgError, OSError, LockBusy) as exc:
        problems.insert(0, exc)
    if problems:
        outcome["error"] = "; ".join(str(problem) for problem in problems)
        transfer.module.warn("the database pass before the origin's stop (catch_up) failed: %s. The window's pass "
                             "moves what it left" % outcome["error"])
    outcome["seconds"] = seconds_since(begun)
    return outcome


def catch_up_passes(transfer, databases, params, sleep=time.sleep, clock=time.monotonic):
    """The catch-up of O(catch_up): one :func:`catch_up` pass, or with O(catch_up_until) passes one after
    the other until one has begun once that file existed or O(catch_up_until_timeout) passed (or the gate is
    open, or a pass failed), a pass every CATCH_UP_PERIOD seconds at most. Return the last pass's outcome (with ``passes`` and
    ``first_seconds``) and the Transfer for the pass after them."""
    until, passes, first = params["catch_up_until"], 0, None
    started = clock()
    while True:
        began = clock()
        last_one = not until or os.path.exists(until) or began - started >= params["catch_up_until_timeout"]
        transfer.origin_serving = True
        outcome = catch_up(transfer, databases, params)
        transfer, passes = transfer.for_next_pass(), passes + 1
        first = outcome["seconds"] if first is None else first
        if last_one or "error" in outcome or gate.read_token(params["gate_path"]) == params["gate_token"]:
            break
        # a pass that had little to move is not followed at once: the origin's statistics are read again
        while clock() - began < CATCH_UP_PERIOD and not os.path.exists(until):
            sleep(0.1)
    outcome.update(passes=passes, first_seconds=first)
    return outcome, transfer


def give_own_address(transfer, params):
    """The target's own address in the copied records (O(readdress_to)), once every database is verified:
    ``(what was set or None, a warning or None)``. Raise PgError when the records cannot be set."""
    new = params["readdress_to"]
    if not new or params["readdress_database"] not in transfer.verified:
        return None, None
    old = readdress.usable_old_addresses(params["readdress_from"], new)
    if not old:  # the target has the origin's address (moved before the pass): nothing names another
        return readdress.no_records(), None
    records = readdress.database_records(transfer.target, transfer.run, params["readdress_database"], old, new)
    transfer.commands.append("psql -d %s: %s in t_server, t_systemconf and rc_users where %s" % (
        params["readdress_database"], new, ", ".join(old)))
    return records, readdress.webmail_left_as_is(records["webmail"], old, new)


def readdressed_any(records):
    """Whether O(readdress_to) changed a record."""
    return bool(records) and bool(sum(records["server"].values()) + records["webmail"]["moved"])


def seconds_since(begun):
    """Seconds from ``begun`` (a ``time.monotonic()`` reading) to now, to the millisecond."""
    return round(time.monotonic() - begun, 3)


def rows_moved(plan):
    """``(rows copied, rows deleted)`` of one table's plan. A table listed by its changes replaces the
    keys written since the last pass; of them, those that were on the target (its count, plus the keys,
    less the origin's count, which the apply checked) were deleted first."""
    if plan["replace"]:
        return plan["counts"]["origin"], plan["counts"]["target"]
    if plan.get("expect") is not None:
        return len(plan["fetch"]), max(0, plan["counts"]["target"] + len(plan["fetch"]) - plan["expect"])
    return len(plan["fetch"]), len(plan["delete"])


def incomplete_name(name):
    """The name a whole copy of ``name`` has on the target until it is complete."""
    partial = name + INCOMPLETE_SUFFIX
    if len(partial.encode("utf-8")) <= MAX_NAME_BYTES:
        return partial
    return "bluemind-migration-%s%s" % (hashlib.sha1(name.encode("utf-8")).hexdigest()[:24], INCOMPLETE_SUFFIX)


def extension_set(extensions):
    """``{name: schema}`` of extensions given as FACTS_SQL's ``[name, schema]`` or as ``{name, schema}``."""
    return dict((e["name"], e["schema"]) if isinstance(e, dict) else (e[0], e[1]) for e in extensions)


def large_objects_text(origin, target):
    """How two ``[count, digest]`` of LARGE_OBJECTS_SQL differ, in words."""
    if origin[0] != target[0]:
        return "%s on the origin, %s on the target" % (origin[0], target[0])
    return "%s on both sides, but their contents, owners, ACLs or comments differ" % origin[0]


def sequence_text(value, called):
    return str(value) if called else "never used"


def in_parallel(calls, workers=None):
    """Results of the calls, run in threads (each mostly waits on a psql); the first error is raised."""
    if len(calls) <= 1:
        return [call() for call in calls]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
    return [future.result() for future in futures]


def sequence_behind(target, origin):
    """True when the target's sequence value is behind the origin's (or never used there)."""
    if target == "never used":
        return True
    try:
        return int(target) <= int(origin)
    except (TypeError, ValueError):
        return False


def load_state(path):
    """What the last passes left (per database: both sides' ids); empty when missing or unreadable."""
    try:
        with open(path) as handle:
            state = json.load(handle)
        return state if isinstance(state, dict) else {}
    except (IOError, OSError, ValueError, TypeError):
        return {}


def save_state(path, state):
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".db-sync-")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(state, out, indent=1, sort_keys=True)
        os.chmod(temporary, 0o600)
        os.rename(temporary, path)
    except Exception:
        os.unlink(temporary)
        raise


def progress_board(params, check_mode):
    """The databases' progress and its file (none in check mode; nothing with ``progress_interval: 0``)."""
    if not params["progress_interval"]:
        return ProgressBoard("databases", [])
    entries = [TreeProgress(name, counts_files=False) for name in params["databases"]]
    period = max(1.0, min(5.0, params["progress_interval"] / 2.0))
    return ProgressBoard("databases", entries, None if check_mode else params["progress_path"], period)


def main():
    argument_spec = ssh_argument_spec()
    argument_spec.update(lock_argument_spec())
    argument_spec.update(gate.gate_argument_spec())
    argument_spec.update(jobs.job_argument_spec())
    argument_spec.update(pg_argument_spec())
    argument_spec.update(pg_maintenance_argument_spec())
    argument_spec.update(
        databases=dict(type="list", elements="str", default=["bj", "bj-data"]),
        origin_db_port=dict(type="int", default=5432),
        origin_db_password=dict(type="str", no_log=True),
        target_db_host=dict(type="str", default="127.0.0.1"),
        target_db_port=dict(type="int", default=5432),
        target_db_password=dict(type="str", no_log=True),
        pgpass_file=dict(type="path"),
        tunnel_port=dict(type="int", default=0),
        mode=dict(type="str", default="sync", choices=["sync", "full"]),
        state_file=dict(type="path"),
        origin_serving=dict(type="bool", default=False),
        catch_up=dict(type="bool", default=False),
        catch_up_until=dict(type="path"),
        catch_up_until_timeout=dict(type="float", default=300.0),
        progress_interval=dict(type="int", default=30),
        progress_path=dict(type="path", default="/run/bluemind-migration/db-progress.json"),
        readdress_database=dict(type="str", default="bj"),
        buckets_from_rows=dict(type="int", default=8192),
    )
    argument_spec.update(readdress.argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    # run as a background job: its process and its result on the target, for bluemind_job_wait
    jobs.start_job(module)
    params = module.params
    if params["readdress_to"] and params["origin_serving"]:
        module.fail_json(msg="readdress_to is for the pass of the window: the copy made while the origin still serves "
                             "(origin_serving) is not the one that serves. Nothing was changed")
    if params["gate_path"] and not params["gate_token"]:
        module.fail_json(msg="gate_path needs gate_token (made by the run that opens the gate). Nothing was changed")
    started, started_at = time.monotonic(), stamp()
    origin_ssh = OriginSsh(module.get_bin_path("ssh", required=True), params)
    bin_dir = params["pg_bin_dir"] or os.path.dirname(module.get_bin_path("pg_dump", required=True))
    missing = [tool for tool in ("pg_dump", "psql") if not os.access(os.path.join(bin_dir, tool), os.X_OK)]
    if missing:
        module.fail_json(msg="%s not found in %s on the target: install the PostgreSQL client of the "
                             "target's server version, or set pg_bin_dir" % (" and ".join(missing), bin_dir))
    target = PgServer("target", bin_dir, params["target_db_host"], params["target_db_port"],
                      params["db_user"], params["target_db_password"], params["pgpass_file"])
    result = dict(changed=False, databases=[], bytes=0, tables=0, rows=0, executed_commands=[],
                  waited_for_lock=0.0, waited_for_gate=0.0, started_at=started_at)
    try:
        origin_ssh.check_files()
        with Tunnel(origin_ssh, params["tunnel_port"] or free_local_port(), params["origin_db_port"]) as tunnel:
            origin = PgServer("origin", bin_dir, "127.0.0.1", tunnel.port, params["db_user"],
                              params["origin_db_password"], params["pgpass_file"])
            origin.env["PGAPPNAME"] = APP_NAME  # left out of the wait for a quiet database: they only read
            transfer = Transfer(module, origin, target)
            rc, out, _err = module.run_command([os.path.join(bin_dir, "pg_dump"), "--version"])
            transfer.dump_version = out.strip() if rc == 0 else None
            transfer.state = load_state(params["state_file"])
            result["executed_commands"] = transfer.commands
            result.update(origin_version=transfer.version(origin), target_version=transfer.version(target))
            if transfer.superusers["origin"]:
                origin.options = UNCOUNTED_READS  # the origin's statistics lose none of its writers' counts to ours
            # What BlueMind's writes do not change (each database's locale, extensions and settings) is
            # read first, the databases side by side; a target that cannot hold them fails here.
            result["databases"] = in_parallel([functools.partial(transfer.inspect, name) for name in params["databases"]])
            transfer.check_target(result["databases"])
            # Started ahead of the origin's stop: no row of the origin is read, nor the lock held (a job whose
            # gate never opens must not hold it), before the play opens the gate, but by the catch-up pass,
            # which holds the lock for its own length.
            if params["gate_path"] and params["mode"] != "full":
                if params["catch_up"] and params["state_file"] and not module.check_mode:
                    result["catch_up"], transfer = catch_up_passes(transfer, result["databases"], params)
                # the target's side of each row sync (its BlueMind is stopped), out of the window
                in_parallel([functools.partial(transfer.read_target_ahead, name) for name in params["databases"]])
            # ready once the listings read ahead ended: the play waits for it before the origin's stop
            jobs.ready_when(module, transfer.wait_reading_ahead)
            if params["gate_path"]:
                try:
                    result["waited_for_gate"] = gate.wait(params["gate_path"], params["gate_token"],
                                                          params["gate_timeout"], "the origin's stop")
                finally:
                    transfer.stop_reading_ahead()
                # the pass begins here, for its seconds and the report's timeline
                started, result["started_at"] = time.monotonic(), stamp()
            if not module.check_mode:
                result["waited_for_lock"] = acquire(lock_path(params, "db"), params["lock_timeout"], "a database pass")
            result["changed"] = True
            failure = None
            board = progress_board(params, module.check_mode)
            transfer.progress = dict((tree.path, tree) for tree in board.trees)
            try:
                # One snapshot, tunnel session and target database each: the databases move side by side.
                with board:
                    in_parallel([functools.partial(transfer.sync, entry, params["mode"], not module.check_mode)
                                 for entry in result["databases"]])
            except (SshError, PgError, OSError) as exc:
                failure = exc
            if failure is None and not module.check_mode:
                try:
                    readdressed, warning = give_own_address(transfer, params)
                except PgError as exc:  # the pass's ids are still recorded below: a rerun moves nothing again
                    failure = PgError("the databases were moved and verified, but giving the target its own address "
                                      "failed: %s. Run the task again" % exc)
                else:
                    if readdressed is not None:
                        result["readdress"] = readdressed
                    if warning:
                        module.warn(warning)
            if params["progress_interval"]:
                result["progress"] = board.finish()
                if board.write_error:
                    module.warn(board.write_error)
            if params["state_file"] and not module.check_mode:
                problems = transfer.save_records(params["state_file"])
                # After a failed pass its own error says what happened (the target may be down or full).
                # An entry not rewritten holds older ids, which the next pass can still trust, or none.
                if problems and failure is None:
                    raise PgError("the databases were moved and verified, but recording their ids in %s failed: %s"
                                  % (params["state_file"], "; ".join(str(p) for p in problems)))
            if failure is not None:
                raise failure
            result["changed"] = any(entry["method"] == "full" or entry.get("rows_copied") or entry.get("rows_deleted")
                                    for entry in result["databases"]) or readdressed_any(result.get("readdress"))
    except (SshError, PgError, OSError, LockBusy, gate.GateClosed) as exc:
        result.update(seconds=seconds_since(started), ended_at=stamp())
        module.fail_json(msg=str(exc), **result)
    for key in ("bytes", "tables", "rows"):
        result[key] = sum(entry.get(key, 0) for entry in result["databases"])
    result.update(seconds=seconds_since(started), ended_at=stamp())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
