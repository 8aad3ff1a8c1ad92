# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Row synchronisation of one PostgreSQL database into an earlier copy of it, by content.

Used when the target already holds a copy with the same schema (an earlier pass during the hot
phase): each table is listed on both sides as ``(md5 of the primary key, md5 of the row)`` in the
same order, the two streams are merged, and only the rows that differ move. A table without a
primary key nor a unique index that can stand for one (BlueMind has several: 4.9's ``t_mailbox_record``,
``t_container_acl``, the partitions of ``t_container_changeset`` before the pg_repack maintenance indexed
them) is listed by content: one line per distinct row
(its hash) with the number of rows that have it, so only the rows that differ move there too, and
rows that are exact duplicates stay as many as on the origin. A partitioned table is moved through
its partitions (each an ordinary table). Every read of
the origin happens in one exported snapshot, so the copy is consistent even while BlueMind writes;
the target's changes are applied in one transaction (``session_replication_role = replica``: no
trigger or foreign key check fires for rows that are already consistent on the origin).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from ansible_collections.bluemind.migration.plugins.module_utils.background import Background
from ansible_collections.bluemind.migration.plugins.module_utils.pg import (
    _tail as tail_of, quote_ident, quote_literal, snapshot_script)

# Both sides render values as text the same way, whatever the servers' defaults.
ROW_TEXT_OPTIONS = ("-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c TimeZone=UTC "
                    "-c extra_float_digits=3 -c bytea_output=hex")

# The database's own tables (not the catalogs', TOAST's or an extension's), as ``c`` and ``n``.
USER_TABLES = (
    "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = c.oid AND d.deptype = 'e')"
)
# What a whole copy's dump is measured against for its progress: the tables' data (heap and TOAST, not
# the indexes, which a dump does not carry).
TABLE_DATA_SIZE_SQL = "SELECT COALESCE(sum(pg_table_size(c.oid)), 0) FROM " + USER_TABLES
# Which cluster, timeline and database: a restored or another server never matches.
DATABASE_IDENT = (
    "(SELECT system_identifier FROM pg_control_system())::text || '/' || "
    "(SELECT timeline_id FROM pg_control_checkpoint())::text || '/' || "
    "(SELECT oid FROM pg_database WHERE datname = current_database())::text"
)
# The index a table's rows are found by (its *identity*, the rows' key): the primary key, else a unique index
# that PostgreSQL would also accept as a replica identity (valid, immediate, not partial, no expression,
# every key column NOT NULL), the one with the fewest columns. BlueMind's 4.9 change-set partitions have
# no primary key, but the pg_repack maintenance gives each a unique index on (item_id, version,
# container_id) after setting item_id NOT NULL. Without one, a table is listed by content.
IDENTITY_INDEX = (
    "(SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR (i.indisunique "
    "AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL AND NOT EXISTS ("
    "SELECT 1 FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a "
    "ON a.attrelid = c.oid AND a.attnum = k.attnum WHERE k.ord <= i.indnkeyatts AND NOT a.attnotnull))) "
    "ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid::regclass::text LIMIT 1)"
)
# The 64-bit hash function of each key column type that a bucket may be computed from when the key is
# not made of integers alone (Table.bucket_sql): the types' own extended hash functions (those of hash
# partitioning, which pg_upgrade keeps valid, so the same from PostgreSQL 11 on; HASH64_PROBE checks it
# on both servers), which hash a text's bytes under a deterministic collation. Not every type: an enum
# hashes its OID, which a dump and restore changes, and a time stamp with time zone has no such
# function of its own type. Any other key is bucketed by the md5 of its text.
HASH64_FUNCTIONS = {
    "smallint": "hashint2extended", "integer": "hashint4extended", "bigint": "hashint8extended",
    "text": "hashtextextended", "character varying": "hashtextextended", "uuid": "uuid_hash_extended",
}
# Whether a server's extended hash functions give the values that PostgreSQL gives on a little-endian
# machine for a database in UTF8 (the lab's 13 and 15 checked; a big-endian one, another encoding, or a
# server without them (before 11) does not), read in dynamic SQL so that a missing function only makes
# it false (the text in Unicode escapes, which only a UTF8 database reads). Both servers must say true for a bucket to use them (:func:`tables_of`).
HASH64_PROBE_INPUTS = ("hashint2extended((-12345)::int2, 0)", "hashint4extended(1234567890, 1)",
                       "hashint8extended(-1234567890123456789, 2)", "hashtextextended(U&'BlueMind \\00E9t\\00E9 \\+01F600', 3)",
                       "uuid_hash_extended('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 4)")
HASH64_PROBE_VALUES = "919240276591220109,6048758503246331602,-4221765814484799463,-5098692548151163151,-6149203922166663227"
HASH64_PROBE = (
    "(SELECT CASE WHEN %s THEN (xpath('/row/h/text()', query_to_xml(%s, false, true, '')))[1]::text = '%s' "
    "ELSE false END)" % (
        "current_setting('server_encoding') = 'UTF8' AND " + " AND ".join(
            "to_regproc('%s') IS NOT NULL" % name for name in sorted(set(HASH64_FUNCTIONS.values()))),
        "'SELECT concat_ws('','', %s) AS h'" % ", ".join(call.replace("'", "''") for call in HASH64_PROBE_INPUTS),
        HASH64_PROBE_VALUES))
# Tables with their copied columns (generated ones left out), identity columns (IDENTITY_INDEX's key
# columns), in order, whether that key is one integer column, when every key column is an integer,
# their bits mixed in one bigint (each shifted 21 bits further, modulo 63, and XORed: no overflow), which
# a bucket is computed from at the cost of a few integer operations (Table.bucket_sql), and else, when
# every key column has a type of HASH64_FUNCTIONS (a text one under a deterministic collation), the key's
# 64-bit hash: each column's, seeded with its position, XORed. A table without a key gets the same hash
# of those of its columns that have such types (its rows' contents are all it is bucketed by: at scale l,
# the md5 of each row of 4.9's t_mailbox_record cost a second of the window on the origin). Run on the
# target (the newer server: attgenerated exists from PostgreSQL 12 on, collisdeterministic too); the
# expressions name columns, so both sides compute them alike.
# A column (``a``, of pg_attribute) of a type of HASH64_FUNCTIONS (a text one under a deterministic
# collation), and the name of that type's function.
_HASH64_TYPED = ("a.atttypid::regtype::text IN (" + ", ".join("'%s'" % name for name in sorted(HASH64_FUNCTIONS)) + ") "
                 "AND (a.attcollation = 0 OR (SELECT co.collisdeterministic FROM pg_collation co WHERE co.oid = a.attcollation))")
_HASH64_FUNCTION = "CASE a.atttypid::regtype::text " + " ".join(
    "WHEN '%s' THEN '%s'" % item for item in sorted(HASH64_FUNCTIONS.items())) + " END"
TABLE_COLUMNS_SQL = (
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
    "(SELECT string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum) FROM pg_attribute a "
    " WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), "
    "COALESCE((SELECT string_agg(quote_ident(a.attname), ',' ORDER BY k.ord) FROM pg_index i "
    " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    " WHERE i.indexrelid = " + IDENTITY_INDEX + " AND k.ord <= i.indnkeyatts), ''), "
    "COALESCE((SELECT i.indnkeyatts = 1 AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) "
    " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
    " WHERE i.indexrelid = " + IDENTITY_INDEX + "), false), "
    "COALESCE((SELECT CASE WHEN bool_and(a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) "
    " THEN string_agg(format('(%I::bigint << %s)', a.attname, (21 * (k.ord - 1)) % 63), ' # ' ORDER BY k.ord) END "
    " FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    " WHERE i.indexrelid = " + IDENTITY_INDEX + " AND k.ord <= i.indnkeyatts), ''), "
    "COALESCE((SELECT CASE WHEN bool_and(" + _HASH64_TYPED + ") "
    " AND NOT bool_and(a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) "
    " THEN string_agg(format('%s(%I, %s)', " + _HASH64_FUNCTION + ", "
    " a.attname, k.ord - 1), ' # ' ORDER BY k.ord) END "
    " FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    " WHERE i.indexrelid = " + IDENTITY_INDEX + " AND k.ord <= i.indnkeyatts), "
    # a table without a key: its rows' contents by the same functions, each column of those types that is
    # copied (a NULL counting as 0), seeded with its column number on the target (the text is run as it is)
    "CASE WHEN " + IDENTITY_INDEX + " IS NULL THEN (SELECT string_agg(format('COALESCE(%s(%I, %s), 0)', "
    " " + _HASH64_FUNCTION + ", a.attname, a.attnum - 1), "
    " ' # ' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    " AND a.attgenerated = '' AND " + _HASH64_TYPED + ") END, '') "
    "FROM " + USER_TABLES + " ORDER BY 1"
)
# Extension comments come from the installed version of the extension, not from the database.
IGNORED_SCHEMA_LINES = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict ", "\\unrestrict ",
                        "COMMENT ON EXTENSION ")
# The snapshot's next transaction id (64 bits), read once a statement (an uncorrelated subquery): no alias
# of the listing's own, which a column of the table (a ``c``) would make ambiguous.
NEXT_XID = "(SELECT txid_snapshot_xmax(txid_current_snapshot()))"
# The 64-bit id of the transaction that wrote a row's version (its 32-bit xmin, which freezing keeps
# since PostgreSQL 9.4, placed in the current epoch, or the previous one when it is ahead of NEXT_XID's).
XID64 = ("(((%(next)s >> 32) - CASE WHEN t.xmin::text::bigint > (%(next)s & 4294967295) THEN 1 ELSE 0 END) "
         "* 4294967296 + t.xmin::text::bigint)" % dict(next=NEXT_XID))
# How far back from the session's next transaction id ``age()`` is exact for (a signed 32-bit distance),
# with a wide margin: a pass that ran longer ago than this many transactions is tested by XID64.
AGE_EXACT_WITHIN = 1 << 30


def age_exact_sql(since):
    """Whether ``age()`` gives the exact distance of ``since`` (a 64-bit transaction id) in this statement:
    ``since`` is at most AGE_EXACT_WITHIN behind the snapshot's next id, and ``age()`` of its low 32 bits
    (measured from the session's next id, the snapshot's or a later one) is at least that distance and at
    most AGE_EXACT_WITHIN. Evaluated once a statement (an uncorrelated subquery)."""
    return ("(SELECT %(since)d <= q.nx AND q.nx - %(since)d <= %(within)d AND age('%(low)d'::xid) BETWEEN q.nx - %(since)d "
            "AND %(within)d FROM (SELECT txid_snapshot_xmax(txid_current_snapshot()) AS nx) q)" % dict(
                since=int(since), low=int(since) % (1 << 32), within=AGE_EXACT_WITHIN))


def written_since(since):
    """The condition that a row's version (``t``) was written by a transaction at or after ``since`` (a 64-bit
    transaction id). XID64 turns each row's xmin into text and back, which cost the listings of a large
    table most of their time (0.45 s a million rows on PostgreSQL 13, where counting them costs 0.03 s);
    ``age(xmin)`` is the distance of the row's xmin from the session's next transaction id, computed as a
    32-bit subtraction, and the row is as recent as ``since`` when that distance is at most ``since``'s.
    That holds when both distances are below 2**31, which :func:`age_exact_sql` checks for ``since`` (else
    XID64 is tested). A row whose distance is 2**31 or more is older than ``since`` and may then be taken
    for a recent one (its signed distance wraps): a row written since is never taken for an older one, and
    an older one taken for written since is only listed, compared and copied again."""
    return "CASE WHEN %s THEN age(t.xmin) <= (SELECT age('%d'::xid)) ELSE %s >= %d END" % (
        age_exact_sql(since), int(since) % (1 << 32), XID64, int(since))


# Ids that make a later pass compare transaction ids instead of contents: the origin's cluster, its
# timeline and the database (a restored or another server never matches), and the oldest
# transaction still running (every version written later has an id at least as high).
IDENTITY_SQL = (
    "SELECT " + DATABASE_IDENT + ", txid_snapshot_xmin(txid_current_snapshot()), txid_snapshot_xmax(txid_current_snapshot())"
)
# Large objects are read in parts of this many bytes (lo_get of a whole object fails above 1 GB).
LARGE_OBJECT_PART = 1 << 20
# The database's large objects as ``[count, digest]``: what a whole pg_dump carries of them (contents,
# owner, ACL, comment) and the row sync does not (they live in catalogs, not in the database's tables).
# One JSON line per object in oid order, md5 of them all; the content's digest is the md5 of its parts'
# md5s, read with lo_get (sparse objects read as zeros, as pg_dump writes them); the ACL's items are
# sorted and a default ACL spelt out (acldefault), as a restore may store either. No large object: one
# empty scan of pg_largeobject_metadata.
LARGE_OBJECTS_SQL = (
    "(SELECT json_build_array(count(*), md5(COALESCE(string_agg(json_build_array(m.oid::bigint, "
    "pg_get_userbyid(m.lomowner), (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM "
    "unnest(COALESCE(m.lomacl, acldefault('L', m.lomowner))) a), obj_description(m.oid, 'pg_largeobject'), "
    "c.size, c.digest)::text, E'\\n' ORDER BY m.oid), ''))) "
    "FROM pg_largeobject_metadata m CROSS JOIN LATERAL (WITH RECURSIVE part(o, b) AS ("
    "SELECT 0::bigint, lo_get(m.oid, 0, {part}) UNION ALL SELECT part.o + {part}, lo_get(m.oid, part.o + {part}, {part}) "
    "FROM part WHERE length(part.b) = {part}) "
    "SELECT sum(length(part.b)) AS size, md5(string_agg(md5(part.b), '' ORDER BY part.o)) AS digest FROM part) c)"
).format(part=LARGE_OBJECT_PART)
# The database's catalogs as one digest: for each catalog of pg_catalog, its number of rows and the md5 of
# their xmin (the transaction that wrote each row version), so any DDL (which writes catalog rows in a
# transaction of its own) changes it. Left out: what changes without DDL (statistics, large objects,
# compared apart) and the shared catalogs, but for the roles and tablespaces, whose names a schema
# dump prints. VACUUM and ANALYZE update pg_class in place, keeping its xmin. NULL when the roles
# cannot be read (not a superuser): then it proves nothing.
CATALOGS_SQL = (
    "(SELECT CASE WHEN has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN md5(string_agg(c.relname || '=' || "
    "(xpath('/row/f/text()', query_to_xml(format('SELECT count(*) || '':'' || md5(COALESCE(string_agg(xmin::text, '','' "
    "ORDER BY xmin::text::bigint), '''')) AS f FROM pg_catalog.%I', c.relname), false, true, '')))[1]::text, ';' "
    "ORDER BY c.relname)) END FROM pg_catalog.pg_class c WHERE c.relnamespace = 'pg_catalog'::regnamespace "
    "AND c.relkind = 'r' AND c.relname NOT IN ('pg_statistic', 'pg_statistic_ext_data', 'pg_largeobject', "
    "'pg_largeobject_metadata') AND (NOT c.relisshared OR c.relname IN ('pg_authid', 'pg_auth_members', 'pg_tablespace')))"
)


def _row_counts(condition):
    """The subquery of ``{table: rows}`` (JSON) of the database's tables that ``condition`` (SQL after
    USER_TABLES' own) keeps, each counted exactly."""
    return ("(SELECT COALESCE(json_object_agg(t, n), '{}') FROM (SELECT quote_ident(n.nspname) || '.' || "
            "quote_ident(c.relname) AS t, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', "
            "n.nspname, c.relname), false, true, '')))[1]::text::bigint AS n FROM " + USER_TABLES + condition + ") q)")


# Everything a pass compares, of one database, in one query (one psql instead of ten): the ids of
# IDENTITY_SQL, the database's settings, locale (LC_COLLATE, LC_CTYPE), extensions (name, schema),
# every table's exact row count, every sequence, the large objects (LARGE_OBJECTS_SQL)
# and the catalogs' digest (CATALOGS_SQL).


def facts_sql(counted_apart=(), catalogs=True):
    """The query of FACTS_SQL; the tables of ``counted_apart`` (quoted names) are left out of its counts:
    the caller knows them (a row count checked in the transaction that wrote the table, see
    :meth:`RowSync.apply`), and counting a large table scans it. Without ``catalogs`` the catalogs' digest
    is null: the check after a pass's commit compares none (it reads every catalog, tenths of a second)."""
    skip = ""
    if counted_apart:
        skip = " AND NOT (quote_ident(n.nspname) || '.' || quote_ident(c.relname)) = ANY(ARRAY[%s]::text[])" % (
            ", ".join(quote_literal(name) for name in sorted(counted_apart)))
    return (
        "SELECT json_build_object("
        "'ident', " + DATABASE_IDENT + ", "
        "'xmin', txid_snapshot_xmin(txid_current_snapshot()), 'xmax', txid_snapshot_xmax(txid_current_snapshot()), "
        "'settings', (SELECT COALESCE(json_agg(x ORDER BY x), '[]') FROM (SELECT unnest(s.setconfig) AS x "
        "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE s.setrole = 0 AND d.datname = current_database()) q), "
        "'locale', (SELECT json_build_array(datcollate, datctype) FROM pg_database WHERE datname = current_database()), "
        "'extensions', (SELECT COALESCE(json_agg(json_build_array(e.extname, n.nspname) ORDER BY e.extname), '[]') "
        "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace), "
        "'counts', " + _row_counts(skip) + ", "
        "'sequences', (SELECT COALESCE(json_agg(json_build_array(quote_ident(schemaname) || '.' || "
        "quote_ident(sequencename), COALESCE(last_value, start_value), last_value IS NOT NULL) ORDER BY schemaname, sequencename), '[]') "
        "FROM pg_sequences), "
        "'large_objects', " + LARGE_OBJECTS_SQL + ", "
        "'catalogs', " + (CATALOGS_SQL if catalogs else "NULL") + ", "
        "'hash64', " + HASH64_PROBE + ")"
    )


FACTS_SQL = facts_sql()


def table_counts_sql(names):
    """``{table: rows}`` (JSON) of those of ``names`` (quoted names) that the database has."""
    return "SELECT " + _row_counts(" AND (quote_ident(n.nspname) || '.' || quote_ident(c.relname)) = ANY(ARRAY[%s]::text[])" % (
        ", ".join(quote_literal(name) for name in sorted(names)) or "NULL"))


# Above this share of a table's rows, the whole table is copied again rather than row by row.
REPLACE_RATIO = 0.5
# A table planned by buckets (see RowSync.plan_tables) is cut into about one bucket per this many of
# the origin's rows (at most MAX_BUCKETS): a bucket whose rows are not all there on both sides is listed
# key by key, so a few deletions cost a few buckets' listing.
BUCKET_ROWS = 64
MAX_BUCKETS = 1 << 14
# A table without a key is cut finer: in it an update is a row gone (its old content) and a row written,
# so each update costs its old content's bucket a listing (BlueMind 4.9's t_mailbox_record, whose rows
# change at every flag change).
KEYLESS_BUCKET_ROWS = 4
# A table whose key is made of integers and that lost rows on the origin since the last pass is cut
# finer still, whatever its size (RowSync.plan_tables' ``fine``): its buckets cost a few integer
# operations a row, where listing it whole hashes and sorts every row on both sides (BlueMind's 256
# change-set partitions, which lose an item's rows at each of its changes: a few hundred rows each,
# a few changes each in a window).
FINE_BUCKET_ROWS = 8
# Below this many rows on the origin, such a table is listed whole: as cheap as counting it.
FINE_BUCKETS_FROM_ROWS = 8 * FINE_BUCKET_ROWS


def bucket_count(rows, per_bucket=BUCKET_ROWS):
    """How many buckets a table of ``rows`` rows is cut into."""
    return max(1, min(MAX_BUCKETS, int(rows) // per_bucket))


def table_buckets(table, rows, fine=False):
    """How many buckets ``table`` (a :class:`Table`) is counted by, the target holding ``rows`` of its
    rows: finely (``fine``, see FINE_BUCKET_ROWS) or as its kind of key asks."""
    return bucket_count(rows, FINE_BUCKET_ROWS if fine else table.bucket_rows())


def bucket_number(table, origin_rows, target_rows, buckets_from_rows, fine=False):
    """How many buckets a table listed by buckets is counted by (:meth:`RowSync.plan_tables`): by the target's
    rows, which the target's side read before the gate counted by the same number (see ahead_statements),
    when the origin holds at least ``buckets_from_rows`` rows or it is cut ``fine``; else one, whose counts
    are the tables' row counts. Any number gives both sides the same buckets."""
    if int(origin_rows) >= buckets_from_rows or fine:
        return table_buckets(table, target_rows, fine)
    return 1


def ahead_statements(tables, target_rows, target_since, buckets_from_rows):
    """The target's side of the first listing of a row sync (:meth:`RowSync.plan_tables`) that a pass
    can read before its gate, while the target does not change: for each of ``tables`` (Table objects)
    with rows there (``target_rows``: name -> rows), the keys written since ``target_since`` (its
    oldest running transaction at the end of the last pass), and its rows counted by bucket by the
    number of buckets that the pass would choose for it: when it has at least ``buckets_from_rows``
    rows, and finely when its key is made of integers and it has at least FINE_BUCKETS_FROM_ROWS. The
    target's rows stand for the origin's here, which are read after the gate. Which tables the pass
    lists by buckets depends on the origin too: it takes what it needs of these and runs the others;
    a group of tables all read ahead starts no target session in the window."""
    statements = []
    for table in tables:
        rows = int(target_rows.get(table.name, 0))
        if rows < 1:
            continue
        statements.append(table.changed_keys_sql(target_since))
        for fine, least in ((False, buckets_from_rows), (True, FINE_BUCKETS_FROM_ROWS)):
            buckets = table_buckets(table, rows, fine)
            if rows >= least and buckets > 1 and (table.int_mix or not fine):
                statements.append(table.bucket_counts_sql(buckets))
    return list(dict.fromkeys(statements))


# The target's transaction fails with this word, then the numbers of the plans whose table does not
# end with the origin's row count: a table planned from its changed rows alone lost a row on the
# origin that no transaction id shows (see RowSync.plan_tables). Nothing is committed then.
RECOUNT_MARK = "bm-rowsync-recount"


class Table(object):
    """One table: quoted name, copied columns and primary key columns (SQL lists), whether that key
    is one integer column (``t``, as psql prints a boolean, or True), and the key's integer columns
    mixed in one bigint (TABLE_COLUMNS_SQL; empty unless every key column is an integer)."""

    def __init__(self, name, columns, key, int_key=False, int_mix="", hash64=""):
        self.name = name
        self.columns = columns
        self.key = key
        # An integer key is its own identity: listed in its index's order as it is (no hash to
        # compute for every row, nor to sort), rows found by it through the index.
        self.int_key = bool(key) and int_key in (True, "t")
        self.int_mix = int_mix if key else ""
        # Else the key's 64-bit hash by its types' own functions, when both servers compute them alike
        # (see HASH64_PROBE; :func:`tables_of` leaves it out otherwise): a bucket then costs no md5. Without a
        # key, the same hash of the row's columns of those types.
        self.hash64 = hash64 if not self.int_key and not self.int_mix else ""
        # Any other key is listed by its hash; the listings of the few rows a pass moves also carry
        # the key's values (a *locator*, see locator_sql), by which its index finds them.
        self.key_names = identifiers(key) if key and not self.int_key else []

    def locator_sql(self):
        """A row's key as a JSON object of its columns, hex-encoded (COPY's text format leaves hex as it
        is, where it would escape a JSON string's backslashes): what :meth:`select_sql` and
        :meth:`delete_sql` find the row by through the key's index, where its hash would scan the table."""
        return "encode(convert_to(json_build_object(%s)::text, 'UTF8'), 'hex')" % ", ".join(
            "%s, t.%s" % (quote_literal(name), quote_ident(name)) for name in self.key_names)

    def _located(self, keys, locators):
        """The WHERE condition finding the rows of ``keys`` (key hashes) by their locators, or None when
        the table has none or a key has no locator (``locators``: key hash -> hex of :meth:`locator_sql`).
        Each locator's row is looked up alone (a subquery per key: the key's index, whatever the planner
        would think of a join with a list it cannot count), then the rows are read by their physical
        address (a TID scan).

        A table without a key whose buckets come from its columns' hashes (``hash64``): a content's locator is
        that hash (:meth:`_contents_sql`), and its rows are those whose hash is one of the keys' before their
        md5 is computed (a scan still, but of a few integer and text hashes a row, not the md5 of its text)."""
        if not keys or not locators or any(key not in locators for key in keys):
            return None
        if not self.key and self.hash64:
            # both lists looked up in a hash (a hashed subplan): ``= ANY`` of an array searches it element by
            # element for each row before PostgreSQL 14 (2.5 s for 2000 contents of 4.9's t_mailbox_record at
            # scale l on 13, against 0.7 s for the md5 of every row)
            return "CASE WHEN (%s) IN (SELECT unnest(%s::bigint[])) THEN %s IN (SELECT unnest(%s::text[])) ELSE false END" % (
                self.hash64, text_array(sorted(set(int(locators[key]) for key in keys))), self.key_hash(), text_array(keys))
        if not self.key_names:
            return None
        found = "[%s]" % ",".join(bytes.fromhex(locators[key]).decode("utf-8") for key in keys)
        equal = " AND ".join("x.{0} = r.{0}".format(quote_ident(name)) for name in self.key_names)
        return "t.ctid = ANY(ARRAY(SELECT (SELECT x.ctid FROM %s x WHERE %s LIMIT 1) FROM json_populate_recordset(" \
               "NULL::%s, %s) r))" % (self.name, equal, self.name, quote_literal(found))

    def key_hash(self):
        """What a row is found by: its integer key, else the hash of its key, or of all of it in a
        table without a key."""
        if self.int_key:
            return self.key
        return "md5(ROW(%s)::text)" % (self.key or self.columns)

    def _order(self):
        return self.key if self.int_key else "%s COLLATE \"C\"" % self.key_hash()

    def _keys(self, keys):
        return "(SELECT unnest(%s::%s[]))" % (text_array(keys), "bigint" if self.int_key else "text")

    def bucket_sql(self, buckets, hashed=None):
        """A row's bucket, 0 to ``buckets`` - 1, the same on both sides for the same key: from the integer
        key itself, or its integer columns mixed, or the key's 64-bit hash (``hash64``; in a table without a
        key, the hash of its columns of such types), else from the md5 of the key, or of the whole row in a
        table without a key (``hashed``: an expression that already holds that md5). Any function of a row's
        content would do (an older row is the same on both sides, so in the same bucket): these are the cheap
        ones that name the same bucket on both servers."""
        if self.int_key:
            return "abs(%s %% %d)" % (self.key, buckets)
        if self.int_mix:
            # by an odd number (the one below an even ``buckets``): every bit of the mix counts, where a
            # power of two would keep the first column's low bits alone (5.x: the same subtree_id)
            return "abs((%s) %% %d)" % (self.int_mix, buckets - 1 + buckets % 2)
        if self.hash64:
            return "abs((%s) %% %d)" % (self.hash64, buckets)
        return "(('x' || substr(%s, 1, 7))::bit(28)::int %% %d)" % (hashed or self.key_hash(), buckets)

    def bucket_rows(self):
        """About how many of the origin's rows one bucket of this table holds (see KEYLESS_BUCKET_ROWS)."""
        return BUCKET_ROWS if self.key else KEYLESS_BUCKET_ROWS

    def bucket_counts_sql(self, buckets, before=None):
        """``bucket, rows`` of every bucket that holds rows, in no order; with ``before`` (a 64-bit
        transaction id), only the rows whose version a transaction before it wrote."""
        where = " WHERE NOT (%s)" % written_since(before) if before is not None else ""
        # in no order (bucket_rows reads them into a dict): the rows are counted in a hash table of the
        # buckets, where an order had them sorted first (0.3 s a million rows, on disk past work_mem)
        return "COPY (SELECT %s, count(*) FROM %s t%s GROUP BY 1) TO STDOUT" % (
            self.bucket_sql(buckets), self.name, where)

    def listing_sql(self, since=None, within=None):
        """Sorted ``key hash, row`` of every row.

        ``row`` is the hash of the row's content, or, with ``since`` (a 64-bit transaction id), ``1``
        when the row's version was written by a transaction at or after ``since``, else ``0``.
        ``within``: ``(buckets, chosen)``, only the rows of those buckets (see :meth:`bucket_sql`), each
        line with the row's locator last when its key has one (:meth:`locator_sql`).
        A table without a key gives one line per distinct content, ``content hash, number of rows``,
        ``since`` or not (a row's content is all there is to find it by)."""
        if not self.key:
            # the bucket of a row's content hash, or of its columns (then chosen before the hash is computed)
            if self.hash64:
                return self._contents_sql(self._within(within))
            return self._contents_sql("", self._within(within, "h"))
        if since is None:
            row = "md5(ROW(%s)::text)" % self.columns
        else:
            row = "CASE WHEN %s THEN '1' ELSE '0' END" % written_since(since)
        if within is not None and self.key_names:
            row += ", " + self.locator_sql()
        return "COPY (SELECT %s, %s FROM %s t%s ORDER BY %s) TO STDOUT" % (
            self.key_hash(), row, self.name, self._within(within), self._order())

    def _contents_sql(self, rows_where, hashes_where=""):
        """A table without a key's listing: each distinct content's hash and its number of rows, sorted;
        ``rows_where`` filters its rows (``t``), ``hashes_where`` their hashes (``h``). With ``hash64``, each
        line ends with the content's hash of its columns, its locator (see :meth:`_located`)."""
        if self.hash64:
            return ("COPY (SELECT h, count(*), l FROM (SELECT %s AS h, (%s) AS l FROM %s t%s) s%s GROUP BY h, l "
                    "ORDER BY h COLLATE \"C\") TO STDOUT" % (self.key_hash(), self.hash64, self.name, rows_where, hashes_where))
        return ("COPY (SELECT h, count(*) FROM (SELECT %s AS h FROM %s t%s) s%s GROUP BY h "
                "ORDER BY h COLLATE \"C\") TO STDOUT" % (self.key_hash(), self.name, rows_where, hashes_where))

    def _within(self, within, hashed=None):
        """The WHERE clause of ``within`` (``(buckets, chosen)``, or None: no clause); the chosen buckets
        are an array's elements, which PostgreSQL looks up in a hash (a literal IN list is searched
        element by element for each row before PostgreSQL 14)."""
        if within is None:
            return ""
        buckets, chosen = within
        return " WHERE %s IN (SELECT unnest(%s::int[]))" % (self.bucket_sql(buckets, hashed), text_array(
            [int(bucket) for bucket in chosen]))

    def changed_keys_sql(self, since):
        """The sorted keys (as :meth:`listing_sql` gives them) of the rows whose version was written by a
        transaction at or after ``since`` (a 64-bit transaction id), each with an empty row and its
        locator when its key has one (:meth:`locator_sql`); in a table without a key, the hashes of
        those rows' contents, each with how many such rows have it."""
        if not self.key:
            return self._contents_sql(" WHERE %s" % written_since(since))
        located = ", '', %s" % self.locator_sql() if self.key_names else ""
        return "COPY (SELECT %s%s FROM %s t WHERE %s ORDER BY %s) TO STDOUT" % (
            self.key_hash(), located, self.name, written_since(since), self._order())

    def select_sql(self, keys=None, locators=None):
        """The origin's rows to copy: all of them (``keys`` None) or those whose key hash is listed,
        found through the key's index when ``locators`` has every key's (see :meth:`_located`)."""
        located = self._located(keys, locators)
        if located is not None:
            return "COPY (SELECT %s FROM %s t WHERE %s) TO STDOUT" % (self.columns, self.name, located)
        sql = "SELECT %s FROM %s" % (self.columns, self.name)
        if keys is not None:
            sql += " WHERE %s IN %s" % (self.key_hash(), self._keys(keys))
        return "COPY (%s) TO STDOUT" % sql

    def delete_sql(self, keys=None, locators=None):
        """The target's rows to delete: all of them or those of ``keys``, as :meth:`select_sql` finds them."""
        if keys is None:
            return "DELETE FROM %s;" % self.name
        located = self._located(keys, locators)
        if located is not None:
            return "DELETE FROM %s t WHERE %s;" % (self.name, located)
        return "DELETE FROM %s WHERE %s IN %s;" % (self.name, self.key_hash(), self._keys(keys))


def tables_of(columns, hash64=True):
    """The :class:`Table` of each row of TABLE_COLUMNS_SQL; without ``hash64`` (HASH64_PROBE false on a
    side), none buckets its key by the key's 64-bit hash."""
    return [Table(*(tuple(row) if hash64 else tuple(row)[:5])) for row in columns]


def identifiers(names):
    """The names of a comma-separated list of identifiers as ``quote_ident`` writes them
    (``a,"B c","d""e"`` -> ``['a', 'B c', 'd"e']``)."""
    found = re.findall(r'\s*("(?:[^"]|"")*"|[^,]+)\s*(?:,|$)', names)
    return [name[1:-1].replace('""', '"') if name.startswith('"') else name.strip() for name in found]


def text_array(items):
    """An array literal of hex strings or integers (no quoting needed inside)."""
    return quote_literal("{%s}" % ",".join(str(item) for item in items))


def normalize_schema(text):
    """A schema-only dump without comments (extensions' included), blank lines, session settings and
    psql's per-dump ``\\restrict`` keys (pg_dump 13.22, 15.14 and later), to compare two servers.
    ``CREATE EXTENSION`` lines stay: an extension in another schema is a different schema."""
    keep = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(IGNORED_SCHEMA_LINES):
            continue
        keep.append(line.rstrip())
    return keep


def sorted_listing(lines, side, numeric=False, locators=None):
    """``(key, row)`` of each ``key\trow`` line (``row`` empty when the line is a key alone), keys as
    integers when ``numeric``; raises ValueError when the ``side``'s listing is not sorted by key.
    With ``locators`` (a dict), a third field of a line is a locator (Table.locator_sql), put there
    under its key."""
    previous = None
    for line in lines:
        key, _tab, row = line.rstrip("\n").partition("\t")
        if locators is not None:
            row, _tab, locator = row.partition("\t")
            if locator:
                locators[key] = locator
        if numeric:
            key = int(key)
        if previous is not None and key <= previous:
            raise ValueError("the %s's listing is not sorted by key at %s" % (side, key))
        previous = key
        yield key, row


def merge_listings(origin_lines, target_lines, by_flags=False, numeric=False, locators=None):
    """Compare two sorted ``key\\trow`` listings; return ``(fetch, delete, counts)``.

    A row present on both sides differs when its hashes differ or, ``by_flags``, when either side
    flags it (``1``: written since the last pass). ``numeric`` keys (integers, sorted as numbers)
    are returned as integers; ``locators`` as :func:`sorted_listing` reads them.
    ``fetch``: keys to copy from the origin (new or changed); ``delete``: keys to remove from the
    target first (gone or changed). Raises ValueError when a listing is not sorted.
    """
    fetch, delete = [], []
    counts = dict(origin=0, target=0, same=0, changed=0, new=0, gone=0)

    def reader(lines, side):
        for key, row in sorted_listing(lines, side, numeric, locators):
            counts[side] += 1
            yield key, row

    origin, target = reader(origin_lines, "origin"), reader(target_lines, "target")
    o, t = next(origin, None), next(target, None)
    while o is not None or t is not None:
        if t is None or (o is not None and o[0] < t[0]):
            fetch.append(o[0])
            counts["new"] += 1
            o = next(origin, None)
        elif o is None or t[0] < o[0]:
            delete.append(t[0])
            counts["gone"] += 1
            t = next(target, None)
        else:
            if (o[1] == "0" and t[1] == "0") if by_flags else (o[1] == t[1]):
                counts["same"] += 1
            else:
                fetch.append(o[0])
                delete.append(o[0])
                counts["changed"] += 1
            o, t = next(origin, None), next(target, None)
    return fetch, delete, counts


def bucket_rows(lines):
    """``{bucket: rows}`` of a listing of :meth:`Table.bucket_counts_sql`."""
    counts = {}
    for line in lines:
        bucket, _tab, number = line.rstrip("\n").partition("\t")
        counts[int(bucket)] = int(number)
    return counts


def differing_buckets(origin_counts, target_counts):
    """The buckets whose rows the two sides do not count alike, in order."""
    return sorted(bucket for bucket in set(origin_counts).union(target_counts)
                  if origin_counts.get(bucket, 0) != target_counts.get(bucket, 0))


def changed_keys(origin_lines, target_lines, numeric=False, locators=None):
    """The keys of two sorted listings of changed rows (:meth:`Table.changed_keys_sql`), both sides'
    together, sorted; their locators into ``locators`` (see :func:`sorted_listing`). Raises ValueError
    when a listing is not sorted."""
    keys = set(key for key, _row in sorted_listing(origin_lines, "origin", numeric, locators))
    keys.update(key for key, _row in sorted_listing(target_lines, "target", numeric, locators))
    return sorted(keys)


def recount_sql(checks):
    """A statement that fails the transaction, naming the plans (``checks``: ``[(number, table name,
    rows expected, rows before, rows copied)]``) whose table does not hold the rows expected, with
    RECOUNT_MARK. A table whose rows before the transaction are known (not None) is counted without a
    scan: those rows, less the rows its delete took (:func:`counted_delete_sql`), plus the rows copied;
    any other is counted (``count(*)``, a scan of the table)."""
    values = ", ".join(
        "(%d, %s, %d::bigint)" % (number, "(SELECT count(*) FROM %s)" % name if before is None else
                                  "%d - COALESCE(current_setting(%s, true), '0')::bigint + %d" % (
                                      int(before), quote_literal(deleted_setting(number)), int(copied)), int(rows))
        for number, name, rows, before, copied in checks)
    return ("DO $bm$ DECLARE bad text; BEGIN SELECT string_agg(i::text, ',' ORDER BY i) INTO bad FROM (VALUES %s) "
            "v(i, n, e) WHERE n <> e; IF bad IS NOT NULL THEN RAISE EXCEPTION '%s %%', bad; END IF; END $bm$;" % (
                values, RECOUNT_MARK))


def deleted_setting(number):
    """The setting (of the transaction alone) holding how many rows the delete of plan ``number`` took."""
    return "bm.deleted_%d" % number


def counted_delete_sql(delete, number):
    """``delete`` (a ``DELETE`` statement) that leaves the number of rows it took in
    :func:`deleted_setting` of plan ``number`` (a custom setting of the transaction: nothing written in a
    catalog, as a temporary table would)."""
    return "WITH d AS (%s RETURNING 1) SELECT set_config(%s, count(*)::text, true) FROM d;" % (
        delete.rstrip().rstrip(";"), quote_literal(deleted_setting(number)))


def recounted(message):
    """The plan numbers that a failed transaction's ``message`` names after RECOUNT_MARK, or None."""
    found = re.search(re.escape(RECOUNT_MARK) + r" ([0-9][0-9,]*)", message or "")
    return [int(number) for number in found.group(1).split(",") if number] if found else None


class Snapshot(object):
    """A psql session on the origin holding a repeatable-read transaction whose snapshot it exports.

    Other sessions (``pg_dump --snapshot``, :func:`snapshot_script`) see exactly the same data for as
    long as the ``with`` block lasts; nothing is written on the origin.

    ``before``: a query of one line of output that the session runs first, in a transaction of its own
    that ends before the snapshot is taken (the statistics' mark, see pgsignature: one session on the
    origin instead of two, each a connection through the SSH tunnel); its line is ``before_result``. The
    session then runs with the server's own settings (the mark's epoch holds them). When that session
    fails, the snapshot is exported by a session of its own and ``before_result`` is None.
    """

    def __init__(self, server, database, popen=subprocess.Popen, before=None):
        self.server = server
        self.database = database
        self.popen = popen
        self.before = before
        self.before_result = None
        self.proc = None
        self.id = None
        self.errors = None

    def __enter__(self):
        if self.before:
            try:
                return self._export(self.before)
            except OSError:
                pass  # the snapshot alone, below: its own failure says why
        return self._export(None)

    def _export(self, before):
        self.errors = tempfile.TemporaryFile()
        self.proc = self.popen(
            self.server.psql_args(self.database) + ["--no-align", "--tuples-only"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
            env=dict(os.environ, **self.server.tool_env(own_options=before is None)))
        script = "" if before is None else before.rstrip().rstrip(";") + ";\n"
        self.proc.stdin.write((script + "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                                        "SELECT pg_export_snapshot();\n").encode("utf-8"))
        self.proc.stdin.flush()
        first = self.proc.stdout.readline().decode("utf-8", "replace").strip() if before is not None else None
        line = self.proc.stdout.readline().decode("ascii", "replace").strip() if first != "" else ""
        if not line:
            self.errors.seek(0)
            message = self.errors.read().decode("utf-8", "replace").strip() or "no message"
            self.__exit__()
            raise OSError("exporting a snapshot of %s on the origin failed: %s" % (self.database, message))
        self.before_result, self.id = first, line
        return self

    def __exit__(self, *exc_info):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"COMMIT;\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.errors is not None:
            self.errors.close()
        return False


def _lines(stream):
    for raw in stream:
        yield raw.decode("utf-8", "replace")


def _tail(handle):
    return tail_of(handle) or "no message"


# psql prints this line before the output of each statement of a batch, so that one session can list
# or read many tables: COPY's text format never writes a line that starts with a lone backslash and a
# dot (it doubles every backslash of the data), and `\.` alone ends a COPY's data.
MARK = b"\\.bm-statement "


def batch_script(statements):
    """A psql script running ``statements`` in order, each preceded by its marker line."""
    return "".join("\\echo '\\\\.bm-statement %d'\n%s;\n" % (i, sql.rstrip(";")) for i, sql in enumerate(statements))


class Segments(object):
    """The output of a batch (see :func:`batch_script`) as one iterator of raw lines per statement,
    read in order, each to its end."""

    def __init__(self, stream):
        self.stream = stream
        self.next_line = stream.readline()
        self.index = 0

    def __call__(self):
        expected = MARK + str(self.index).encode() + b"\n"
        if self.next_line != expected:
            raise ValueError("statement %d of the batch gave no output marker (got %r)" % (self.index, self.next_line[:60]))
        self.index += 1
        while True:
            line = self.stream.readline()
            if not line or line.startswith(MARK):
                self.next_line = line
                return
            yield line


class AheadSegments(object):
    """The target's side of a batch: the output of each statement read before the gate (``ahead``:
    statement -> raw lines), the others' from ``live`` (:class:`Segments` of a batch of those alone, in
    the same order), as one :class:`Segments`."""

    def __init__(self, statements, ahead, live):
        self.statements = statements
        self.ahead = ahead
        self.live = live
        self.index = 0

    def __call__(self):
        sql = self.statements[self.index]
        self.index += 1
        if sql in self.ahead:
            return iter(self.ahead[sql])
        return self.live()


# What listing a row costs when only the rows written since the last pass are listed (the table is
# still scanned on both sides, but nothing is hashed, sent or merged for the others), against a row
# listed whole.
CHANGES_ONLY_WEIGHT = 0.1


def balanced_groups(tables, counts, groups, by_changes=()):
    """``tables`` dealt into at most ``groups`` lists of about the same listing cost (``counts``: table
    name -> rows on both sides; a table in ``by_changes``, listed by its changed rows, weighs
    CHANGES_ONLY_WEIGHT of its rows), the costliest first; each list keeps the tables' order."""
    order = dict((table.name, i) for i, table in enumerate(tables))
    loads = [[0, []] for _group in range(max(1, min(groups, len(tables))))]

    def cost(table):
        rows = counts.get(table.name, 0)
        return rows * CHANGES_ONLY_WEIGHT if table.name in by_changes else rows

    for table in sorted(tables, key=lambda table: -cost(table)):
        lightest = min(loads, key=lambda load: load[0])
        lightest[0] += cost(table) + 1
        lightest[1].append(table)
    return [sorted(members, key=lambda table: order[table.name]) for _load, members in loads if members]


class ReadAhead(Background):
    """The target's side of a row sync's first listing (:func:`ahead_statements`) read in the background,
    in ``workers`` sessions, while the pass waits at its gate; :meth:`stop` at the gate keeps what was
    whole by then, for a pass that finds the target as it was (its transaction ids did not move) to
    take instead of running it again. A failure only loses what it did not read."""

    def __init__(self, rowsync, statements, workers):
        super(ReadAhead, self).__init__()
        self.outputs = {}
        groups = [statements[i::workers] for i in range(max(1, workers))]
        self.start(self._read, [(rowsync, group) for group in groups if group])

    def _read(self, rowsync, statements):
        try:
            rowsync.read_ahead(statements, self.outputs, self.started)
        except Exception:  # pylint: disable=broad-except
            pass  # only what was read counts: the pass runs the rest in the window

    def stop(self):
        """Stop what still runs (the gate opened) and return what was read: statement -> raw lines."""
        super(ReadAhead, self).stop()
        return dict(self.outputs)


class RowSync(object):
    """Plan and apply the row differences of one database, the origin read in ``snapshot``.

    However many tables, a plan lists them in one psql session per side, and the changes are applied
    with one session on each side: a database with BlueMind's hundreds of partitions costs a few
    processes, not two per table."""

    def __init__(self, origin, target, database, snapshot, popen=subprocess.Popen, ahead=None):
        self.origin = origin
        self.target = target
        self.database = database
        self.snapshot = snapshot
        self.popen = popen
        # the target's outputs read before the gate, by statement (see ReadAhead); those used are counted
        self.ahead = ahead or {}
        self.ahead_used = 0

    def _start(self, server, script, snapshot=None, stdin=False, stdout=True):
        """psql running ``script`` (from a file: a batch may be larger than a pipe holds), or reading
        its stdin (``stdin``); with ``snapshot``, in a read-only transaction that sees it."""
        errors = tempfile.TemporaryFile()
        args = server.psql_args(self.database)
        script_file = None
        if stdin:
            args = args + ["-f", "-"]
        else:
            script_file = tempfile.NamedTemporaryFile(prefix="bluemind-rows-", suffix=".sql")
            script_file.write((snapshot_script(snapshot, script) if snapshot else script).encode("utf-8"))
            script_file.flush()
            args = args + ["-f", script_file.name]
        proc = self.popen(args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                          stdout=subprocess.PIPE if stdout else subprocess.DEVNULL, stderr=errors,
                          env=dict(os.environ, **server.tool_env(options=ROW_TEXT_OPTIONS)))
        proc.script_file = script_file
        return proc, errors

    def _finish(self, proc, errors, side, what):
        if proc.stdout is not None:
            proc.stdout.close()
        rc = proc.wait()
        message = _tail(errors)
        errors.close()
        if proc.script_file is not None:
            proc.script_file.close()
        if rc != 0:
            raise RowSyncError("%s of %s on the %s failed (psql exit %s): %s" % (
                what, self.database, side, rc, message), side, message)

    def _abandon(self, sessions, exc):
        """Stop the psql sessions of a batch that went wrong: ``(what their errors say, else exc's
        text; the side of the first that said something; its messages)``."""
        reasons, first = [], (None, "")
        for proc, errors, side in sessions:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            message = tail_of(errors)
            errors.close()
            if proc.script_file is not None:
                proc.script_file.close()
            if message:
                reasons.append("on the %s: %s" % (side, message))
                first = first if first[0] else (side, message)
        return ("; ".join(reasons) or str(exc),) + first

    def plan_tables(self, tables, since=None, by_changes=(), rows=None, by_buckets=(), buckets_from_rows=0, fine=()):
        """What must move for each table: ``dict(table, fetch, delete, replace, counts)`` each.

        Without ``since`` the rows' contents are compared; with ``since`` (the origin's and the
        target's oldest running transaction at the end of the last pass) only the rows' keys and
        whether either side wrote them since.

        ``by_changes``: names of tables with a key that deleted no row on the origin since the last
        pass and did not change on the target (pgsignature's proof): with ``since``, only the keys
        of the rows written since on either side are listed, and those rows are replaced on the
        target (deleted there, copied from the origin). Every other row is one the last pass left
        equal on both sides, so the table then holds the origin's rows exactly when it holds as many:
        the plan's ``expect`` is the origin's row count (``rows``: table name -> ``(origin's,
        target's)`` in the pass's snapshot), which :meth:`apply` checks before it commits.

        ``by_buckets``: names of tables with a key that did not change on the target since the last
        pass (its side of the proof alone; the origin may have deleted rows, or its statistics prove
        nothing): with ``since``, the keys written since are listed as for ``by_changes``, and each
        side counts its rows by bucket (:meth:`Table.bucket_sql`), the origin only those written
        before ``since``. Such a row was in the last pass's snapshot, so the target holds it as it is:
        a bucket with as many rows on the target holds the same keys, and only a bucket with more
        there (a row deleted on the origin, or its key updated) is listed key by key, by a second
        session per side for all such tables. The plan replaces the rows written since, deletes the
        keys gone, and expects the origin's row count: the rows its buckets counted and those written
        since, both read in the snapshot (``rows`` may then hold an estimate of the origin's count, which
        only chooses how many buckets: the pass need not count such a table apart).

        A table without a key can be in ``by_buckets`` too: its "keys" are the hashes of its rows'
        contents (each row of the origin's older ones is one the target holds, as many times), cut into
        finer buckets (KEYLESS_BUCKET_ROWS: an update leaves its old content's bucket with a row fewer,
        so it is listed). A bucket listed gives each content its number of rows on both sides, and every
        content written since or counted differently is replaced: all its rows deleted on the target,
        then all of the origin's copied.

        A table of ``by_buckets`` with fewer than ``buckets_from_rows`` rows on the origin is one bucket,
        whose counts need no statement: the origin's older rows are its rows in the snapshot but the
        ones written since (listed anyway), the target's are its rows. When they differ the table is
        listed whole, by flags, in the second session.

        ``fine``: names of tables of ``by_buckets`` cut into buckets of FINE_BUCKET_ROWS rows whatever their
        size (see FINE_BUCKET_ROWS)."""
        if not tables:
            return []
        origin_since, target_since = since or (None, None)
        by_changes = set(by_changes) if since is not None else set()
        by_buckets = set(by_buckets) if since is not None else set()
        modes = ["changes" if table.key and table.name in by_changes else "buckets" if table.name in by_buckets
                 else "whole" for table in tables]
        fine = set(fine)
        buckets = dict((table.name, bucket_number(table, rows[table.name][0], rows[table.name][1], buckets_from_rows,
                                                  table.name in fine))
                       for table, mode in zip(tables, modes) if mode == "buckets")

        def statements(side_since, origin_side):
            for table, mode in zip(tables, modes):
                if mode == "buckets" and buckets[table.name] > 1:
                    yield table.bucket_counts_sql(buckets[table.name], side_since if origin_side else None)
                if mode == "whole":
                    yield table.listing_sql(side_since)
                else:
                    yield table.changed_keys_sql(side_since)

        def plan_each(origin_segments, target_segments):
            plans = []
            for table, mode in zip(tables, modes):
                one_bucket = mode == "buckets" and buckets[table.name] == 1
                if mode == "buckets" and not one_bucket:
                    counts = bucket_rows(_lines(origin_segments())), bucket_rows(_lines(target_segments()))
                if mode == "whole":
                    plans.append(self._plan_whole(table, since, _lines(origin_segments()), _lines(target_segments())))
                    continue
                locators = {}  # the keys' values of a table whose key is not one integer, by key hash
                written = list(sorted_listing(_lines(origin_segments()), "origin", table.int_key, locators))
                keys = sorted(set(key for key, _count in written).union(
                    changed_keys([], _lines(target_segments()), numeric=table.int_key, locators=locators)))
                # the origin's rows written since: one a key, or a content's count in a table without a key
                written_rows = sum(int(count) for _key, count in written) if not table.key else len(written)
                origin_rows = int(rows[table.name][0])
                if one_bucket:
                    counts = {0: origin_rows - written_rows}, {0: int(rows[table.name][1])}
                elif mode == "buckets":
                    # its rows in the snapshot: the older ones, counted by bucket, and those written since
                    origin_rows = sum(counts[0].values()) + written_rows
                if mode == "changes":
                    plans.append(dict(self._plan_by_changes(table, keys, rows[table.name]), locators=locators))
                else:
                    plans.append(dict(table=table, keys=keys, buckets=differing_buckets(*counts), locators=locators,
                                      origin_rows=origin_rows))
            return plans

        what = "listing %d table(s) from %s" % (len(tables), tables[0].name)
        plans = self._listed(list(statements(origin_since, True)), list(statements(target_since, False)), what, plan_each)
        pending = [plan for plan in plans if plan.get("buckets")]

        def plan_buckets(origin_segments, target_segments):
            # a table without a key is listed by content (each content's count), never by flags
            return [merge_listings(_lines(origin_segments()), _lines(target_segments()), by_flags=bool(plan["table"].key),
                                   numeric=plan["table"].int_key, locators=plan["locators"]) for plan in pending]

        def within(plan):
            number = buckets[plan["table"].name]
            return (number, plan["buckets"]) if number > 1 else None

        listed = self._listed([plan["table"].listing_sql(origin_since, within(plan)) for plan in pending],
                              [plan["table"].listing_sql(target_since, within(plan)) for plan in pending],
                              "listing %d bucket(s) of %d table(s) from %s" % (
                                  sum(len(plan["buckets"]) for plan in pending), len(pending),
                                  pending[0]["table"].name), plan_buckets) if pending else []
        found = iter(listed)  # in the order of pending: every plan of a table by buckets with a bucket listed
        return [dict(self._plan_by_buckets(plan["table"], plan["keys"], next(found)[:2] if plan["buckets"] else ([], []),
                                           len(plan["buckets"]), (plan["origin_rows"], rows[plan["table"].name][1])),
                     locators=plan["locators"]) if "keys" in plan else plan for plan in plans]

    def _listed(self, origin_statements, target_statements, what, read):
        """``read(origin's segments, target's segments)`` of one batch per side (the origin's in the
        pass's snapshot), both sessions ended; a listing that fails or is out of order raises
        RowSyncError."""
        origin, origin_err = self._start(self.origin, batch_script(origin_statements), snapshot=self.snapshot)
        # the target's statements read before the gate are not run again
        live = [sql for sql in target_statements if sql not in self.ahead]
        self.ahead_used += len(target_statements) - len(live)
        sessions = [(origin, origin_err, "origin")]
        target = None
        if live:
            target, target_err = self._start(self.target, batch_script(live))
            sessions.append((target, target_err, "target"))
        try:
            result = read(Segments(origin.stdout), AheadSegments(
                target_statements, self.ahead, Segments(target.stdout) if target is not None else None))
        except ValueError as exc:
            # a psql that failed says why (its output ended early); else the listing's own complaint
            reason, side, messages = self._abandon(sessions, exc)
            raise RowSyncError("%s of %s: %s" % (what, self.database, reason), side, messages)
        self._finish(origin, origin_err, "origin", what)
        if target is not None:
            self._finish(target, target_err, "target", what)
        return result

    def read_ahead(self, statements, into, started):
        """Run ``statements`` on the target in one batch and put each one's output into ``into`` (statement
        -> raw lines) once it is whole; ``started(proc)`` is told of the psql process, which :class:`ReadAhead`
        may stop: what was whole by then is kept. Raise RowSyncError when psql fails."""
        if not statements:
            return
        proc, errors = self._start(self.target, batch_script(statements))
        started(proc)
        segments, last = Segments(proc.stdout), None
        try:
            for number, sql in enumerate(statements):
                lines = list(segments())
                if not segments.next_line:  # the end of the output: whole only for the last, once psql ended well
                    last = (sql, lines) if number == len(statements) - 1 else None
                    break
                into[sql] = lines
        except ValueError as exc:
            reason, side, messages = self._abandon([(proc, errors, "target")], exc)
            raise RowSyncError("reading the target's listings of %s ahead: %s" % (self.database, reason), side, messages)
        self._finish(proc, errors, "target", "reading the target's listings ahead")
        if last is not None:
            into[last[0]] = last[1]

    @staticmethod
    def _plan_whole(table, since, origin_lines, target_lines):
        """The plan of a table listed whole (every key, or every content without a key)."""
        # a table without a key is listed by content (counts of each distinct row), never by flags
        fetch, delete, counts = merge_listings(origin_lines, target_lines, by_flags=since is not None and bool(table.key),
                                               numeric=table.int_key)
        # an empty table on both sides has nothing to move
        replace = bool(fetch) and (counts["target"] == 0 or len(fetch) > REPLACE_RATIO * max(counts["origin"], 1))
        if replace:
            fetch, delete = None, None
        return dict(table=table, fetch=fetch, delete=delete, replace=replace, counts=counts)

    @staticmethod
    def _plan_by_changes(table, keys, rows):
        """The plan of a table listed by its changed rows (``keys``), ``rows``: ``(origin's, target's)``."""
        origin_rows, target_rows = (int(count) for count in rows)
        counts = dict(origin=origin_rows, target=target_rows, same=0, changed=len(keys), new=0, gone=0, by_changes=True)
        if keys and (target_rows == 0 or len(keys) > REPLACE_RATIO * max(origin_rows, 1)):
            return dict(table=table, fetch=None, delete=None, replace=True, counts=counts)
        return dict(table=table, fetch=keys, delete=list(keys), replace=False, counts=counts, expect=origin_rows)

    @staticmethod
    def _plan_by_buckets(table, keys, listed, buckets_listed, rows):
        """The plan of a table listed by buckets: the keys written since (``keys``) replaced, what the
        buckets listed key by key found (``listed``: ``(fetch, delete)``) too."""
        fetch, delete = listed
        fetch, delete = sorted(set(keys).union(fetch)), sorted(set(keys).union(delete))
        plan = RowSync._plan_by_changes(table, fetch, rows)
        plan["counts"].update(by_changes=False, by_buckets=True, buckets_listed=buckets_listed)
        if not plan["replace"]:
            plan["delete"] = delete
        return plan

    def plan_table(self, table, since=None):
        """The plan of one table (see :meth:`plan_tables`)."""
        return self.plan_tables([table], since)[0]

    def apply(self, plans, sequences):
        """Apply the plans and the sequences' values on the target in one transaction; bytes moved.

        A plan with ``expect`` (see :meth:`plan_tables`) has its table's rows counted before the commit:
        when one differs, nothing is committed and :class:`Recount` names the plans (their numbers in
        ``plans``). The rows the target held before (its ``counts``' ``target``, read while it does not
        change), less those its delete took, plus those copied (one line of COPY's text a row): no scan of
        the table in the window (see :func:`recount_sql`).

        The origin's rows of every table to fill come from one psql session in the pass's snapshot,
        in the plans' order, and stream into the target's session as COPY data."""
        checked = dict((number, plan) for number, plan in enumerate(plans) if plan.get("expect") is not None)
        copied = dict.fromkeys(checked, 0)  # COPY lines sent, by plan number
        work = [(number, plan) for number, plan in enumerate(plans) if plan["replace"] or plan["fetch"] or plan["delete"]]
        filled = [plan for _number, plan in work if plan["replace"] or plan["fetch"]]
        target, target_err = self._start(self.target, None, stdin=True, stdout=False)
        origin = origin_err = None
        moved = 0
        try:
            if filled:
                origin, origin_err = self._start(self.origin, batch_script(
                    [plan["table"].select_sql(plan["fetch"], plan.get("locators")) for plan in filled]),
                    snapshot=self.snapshot)
                segments = Segments(origin.stdout)
            target.stdin.write(b"BEGIN;\nSET LOCAL session_replication_role = replica;\n")
            for number, plan in work:
                table = plan["table"]
                if plan["replace"] or plan["delete"]:
                    delete = table.delete_sql(plan["delete"], plan.get("locators"))
                    if number in checked:
                        delete = counted_delete_sql(delete, number)
                    target.stdin.write((delete + "\n").encode("utf-8"))
                if plan["replace"] or plan["fetch"]:
                    target.stdin.write(("COPY %s (%s) FROM STDIN;\n" % (table.name, table.columns)).encode("utf-8"))
                    lines = 0
                    for line in segments():
                        target.stdin.write(line)
                        moved += len(line)
                        lines += 1
                    target.stdin.write(b"\\.\n")
                    if number in checked:
                        copied[number] = lines
            if origin is not None:
                reader, origin = origin, None
                self._finish(reader, origin_err, "origin", "reading the rows to copy")
            if checked:
                target.stdin.write((recount_sql([(number, plan["table"].name, plan["expect"], plan.get(
                    "counts", {}).get("target"), copied[number]) for number, plan in checked.items()]) + "\n").encode("utf-8"))
            for name, value, called in sequences:
                target.stdin.write(("SELECT pg_catalog.setval(%s, %s, %s);\n" % (
                    quote_literal(name), int(value), "true" if called == "t" else "false")).encode("utf-8"))
            target.stdin.write(b"COMMIT;\n")
            target.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the target's psql stopped: its exit code and messages say why
        except RowSyncError:
            self._abandon([(target, target_err, "target")], None)
            raise
        except ValueError as exc:
            reason, side, messages = self._abandon([(origin, origin_err, "origin")], exc)
            self._abandon([(target, target_err, "target")], None)
            raise RowSyncError("reading the rows to copy from %s: %s; nothing was changed on the target" % (
                self.database, reason), side, messages)
        if origin is not None:  # the target stopped reading (its psql failed): its message says why
            self._abandon([(origin, origin_err, "origin")], None)
        rc = target.wait()
        message = _tail(target_err)
        target_err.close()
        if rc != 0:
            numbers = recounted(message)
            if numbers is not None:
                raise Recount(numbers, "applying the changes to %s on the target: %d table(s) planned from their "
                              "changed rows do not end with the origin's row count; nothing was changed there" % (
                                  self.database, len(numbers)), "target", message)
            raise RowSyncError("applying the changes to %s on the target failed (psql exit %s), "
                               "nothing was changed there: %s" % (self.database, rc, message), "target", message)
        return moved


class RowSyncError(Exception):
    """Listing or applying the rows failed; the target is unchanged (one transaction). ``side`` (origin or
    target, None for a listing out of order) and ``messages`` (its psql's last messages) say where."""

    def __init__(self, message, side=None, messages=""):
        super(RowSyncError, self).__init__(message)
        self.side = side
        self.messages = messages


class Recount(RowSyncError):
    """A table planned from its changed rows alone did not end with the origin's row count (a row the
    origin lost without a deletion counted: a key changed by an update, or statistics that missed a
    delete); ``numbers``: those plans' numbers in the list given to :meth:`RowSync.apply`. The target
    is unchanged: list those tables whole and apply again."""

    def __init__(self, numbers, message, side=None, messages=""):
        super(Recount, self).__init__(message, side, messages)
        self.numbers = numbers
