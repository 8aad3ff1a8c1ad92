# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a BlueMind server's records name its address.

From the vendor's "Changing a BlueMind Server's IP Address" (bluemind-doc) and an integrator's
``bm-change-url.sh`` (corpusops/setups.bluemind):

- ``host`` and ``hz-member-address`` in ``/etc/bm/bm.ini``;
- ``t_server.ip`` and the same two keys of ``t_systemconf.configuration`` (an hstore that overrides
  bm.ini for the API) in database ``bj``;
- ``rc_users.mail_host`` in database ``bj``: the webmail's (Roundcube's) IMAP host per user;
- ``core_sync_host:`` in ``/etc/cyrus-replication`` (4.x);
- the backup spool ``/var/backups/bluemind/dp_spool/rsync/<address>`` (dataprotect's ``BackupPath``).
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible_collections.bluemind.migration.plugins.module_utils.pg import PgError, quote_literal

CORE_SYNC_HOST = re.compile(r"^(?P<key>\s*core_sync_host\s*:\s*)(?P<value>\S+)(?P<rest>\s*)$", re.MULTILINE)
# bm.ini's own address (the value may be quoted, as BlueMind's installer writes some values).
BM_INI_ADDRESS = re.compile(
    r'^(?P<key>[ \t]*(?:host|hz-member-address)[ \t]*=[ \t]*)(?P<quote>"?)(?P<value>[^"\s]+)(?P=quote)(?P<rest>[ \t]*)$',
    re.MULTILINE)
SERVER_KEYS = ("host", "hz-member-address")
# Where BlueMind keeps them (the vendor's address change, BLUEMIND.md).
BM_INI_PATH = "/etc/bm/bm.ini"
CYRUS_REPLICATION_PATH = "/etc/cyrus-replication"
BACKUP_SPOOL = "/var/backups/bluemind/dp_spool/rsync"


def _swap_values(pattern, text, old_addresses, new_address):
    old = set(old_addresses)
    replaced = []

    def swap(match):
        if match.group("value") not in old:
            return match.group(0)
        replaced.append(match.group("value"))
        quote = match.groupdict().get("quote") or ""
        return match.group("key") + quote + new_address + quote + match.group("rest")

    return pattern.sub(swap, text), replaced


def rewrite_core_sync_host(text, old_addresses, new_address):
    """``text`` with each ``core_sync_host:`` naming an old address set to ``new_address``.

    Returns ``(new_text, [old values replaced])``; a value that is not one of ``old_addresses``
    (another server) is left alone.
    """
    return _swap_values(CORE_SYNC_HOST, text, old_addresses, new_address)


def rewrite_bm_ini(text, old_addresses, new_address):
    """``text`` (bm.ini) with ``host`` and ``hz-member-address`` set to ``new_address`` where they
    name an old address (quoted or not, the quotes kept). Returns ``(new_text, [old values
    replaced])``; other keys and other addresses are left alone."""
    return _swap_values(BM_INI_ADDRESS, text, old_addresses, new_address)


def _in_list(addresses):
    return ", ".join(quote_literal(a) for a in sorted(set(addresses)))


def webmail_update_sql(old_addresses, new_address):
    """Move each webmail profile from an old IMAP host to the new one, unless the user already has a
    profile on the new host (Roundcube's rc_users is unique on username and mail_host). Returns the
    usernames moved."""
    return ("UPDATE rc_users AS u SET mail_host = %(new)s WHERE u.mail_host IN (%(old)s) AND NOT EXISTS "
            "(SELECT 1 FROM rc_users n WHERE n.username = u.username AND n.mail_host = %(new)s) "
            "RETURNING u.username" % dict(new=quote_literal(new_address), old=_in_list(old_addresses)))


def webmail_count_sql(old_addresses, new_address):
    """``movable, blocked`` counts of the profiles on an old host (check mode and the leftovers)."""
    return ("SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM rc_users n WHERE n.username = u.username "
            "AND n.mail_host = %(new)s)), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM rc_users n "
            "WHERE n.username = u.username AND n.mail_host = %(new)s)) FROM rc_users u WHERE u.mail_host IN (%(old)s)"
            % dict(new=quote_literal(new_address), old=_in_list(old_addresses)))


def server_count_sql(old_addresses):
    """``t_server rows, t_systemconf keys`` naming an old address (check mode, and what changes)."""
    old = _in_list(old_addresses)
    return ("SELECT (SELECT count(*) FROM t_server WHERE ip IN (%(old)s)), (SELECT count(*) FROM t_systemconf, "
            "unnest(ARRAY[%(keys)s]) AS k WHERE configuration -> k IN (%(old)s))"
            % dict(old=old, keys=", ".join(quote_literal(k) for k in SERVER_KEYS)))


def server_update_sql(old_addresses, new_address):
    """Set ``new_address`` in ``t_server.ip`` and in t_systemconf's ``host`` and ``hz-member-address``
    where they name an old address, in one statement (a row of t_systemconf is updated once, both
    keys together). Returns ``t_server rows, t_systemconf rows`` updated."""
    old, new = _in_list(old_addresses), quote_literal(new_address)
    keys = [quote_literal(k) for k in SERVER_KEYS]
    swaps = " || ".join("CASE WHEN configuration -> %s IN (%s) THEN hstore(%s, %s) ELSE ''::hstore END" % (
        key, old, key, new) for key in keys)
    matches = " OR ".join("configuration -> %s IN (%s)" % (key, old) for key in keys)
    return ("WITH s AS (UPDATE t_server SET ip = %s WHERE ip IN (%s) RETURNING 1), "
            "c AS (UPDATE t_systemconf SET configuration = configuration || %s WHERE %s RETURNING 1) "
            "SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM c)" % (new, old, swaps, matches))


WEBMAIL_TABLE_SQL = "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'rc_users'"


def argument_spec():
    """The options of a work module that gives the target its own address (doc fragment
    bluemind.migration.readdress, and the module's own readdress_to)."""
    return dict(readdress_to=dict(type="str"), readdress_from=dict(type="list", elements="str", default=[]))


def no_records():
    """What :func:`database_records` returns when nothing named an old address."""
    return dict(server=dict(t_server=0, t_systemconf=0), webmail=dict(moved=0, blocked=0, table=False))


FILES_KEYS = ("bm_ini", "cyrus_replication", "backup_spool", "left_as_is")


def files_summary(done=None):
    """What a work module returns of :func:`files` (its ``done``; without it, nothing was rewritten)."""
    if done:
        return dict((key, done[key]) for key in FILES_KEYS)
    return dict(bm_ini=[], cyrus_replication=[], backup_spool={}, left_as_is=[])


def database_records(server, run, db_name, old_addresses, new_address, check_mode=False):
    """Set ``new_address`` where database ``db_name`` on ``server`` (a PgServer) names an old address: the
    server directory and the system configuration, then the webmail profiles. With ``check_mode`` only
    count. Returns ``dict(server=dict(t_server, t_systemconf), webmail=dict(moved, blocked, table))``;
    raises PgError saying which records could not be read or set."""
    old = ", ".join(old_addresses)
    try:
        rows, keys = (int(v) for v in server.query(run, db_name, server_count_sql(old_addresses),
                                                   "looking for %s in t_server and t_systemconf" % old)[0])
        if (rows or keys) and not check_mode:
            server.query(run, db_name, server_update_sql(old_addresses, new_address),
                         "setting %s in t_server and t_systemconf" % new_address)
    except PgError as exc:
        raise PgError("server directory and system configuration: %s" % exc)
    records = no_records()
    records["server"].update(t_server=rows, t_systemconf=keys)
    try:
        if int(server.query(run, db_name, WEBMAIL_TABLE_SQL, "looking for the webmail's rc_users")[0][0]) == 0:
            return records
        movable, blocked = (int(v) for v in server.query(
            run, db_name, webmail_count_sql(old_addresses, new_address), "counting the webmail profiles on %s" % old)[0])
        if movable and not check_mode:
            movable = len(server.query(run, db_name, webmail_update_sql(old_addresses, new_address),
                                       "moving the webmail profiles to %s" % new_address))
    except PgError as exc:
        raise PgError("webmail profiles: %s" % exc)
    records["webmail"] = dict(moved=movable, blocked=blocked, table=True)
    return records


def webmail_left_as_is(webmail, old_addresses, new_address):
    """What the operator must do about the webmail profiles that could not move, or None."""
    if not webmail["blocked"]:
        return None
    return ("%d webmail profiles stay on %s: their users already have one on %s (rc_users); delete the one "
            "to drop" % (webmail["blocked"], ", ".join(old_addresses), new_address))


def usable_old_addresses(old_addresses, new_address):
    """The old addresses to replace: set, without empty names and without the new address itself."""
    return sorted(set(a for a in old_addresses if a and a != new_address))


def spool_rename(root, old_addresses, new_address, exists=os.path.isdir):
    """The backup spool folder to rename: ``(old path, new path)``, or ``None`` with the reason.

    Only one old folder may exist, and the new one must not: otherwise the folders are left as they
    are and the reason says what to look at.
    """
    new_path = os.path.join(root, new_address)
    olds = [os.path.join(root, a) for a in sorted(set(old_addresses)) if a != new_address
            and exists(os.path.join(root, a))]
    if not olds:
        return None, None
    if len(olds) > 1:
        return None, "several backup spools of the old addresses (%s): rename the right one to %s by hand" % (
            ", ".join(olds), new_path)
    if exists(new_path):
        return None, "both %s and %s exist: merge them by hand (BlueMind reads %s)" % (olds[0], new_path, new_path)
    return (olds[0], new_path), None


class FilesError(Exception):
    """A file of the server's address could not be rewritten or renamed; what was done is in ``done``."""

    def __init__(self, message, done):
        super(FilesError, self).__init__(message)
        self.done = done


def write_like(path, text):
    """Replace ``path`` with ``text`` in one step, with the file's owner and mode."""
    st = os.stat(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def files(old_addresses, new_address, check_mode=False, bm_ini_path=None, cyrus_replication_path=None,
          backup_spool=None):
    """Set ``new_address`` where bm.ini and Cyrus replication name an old address, and rename the backup
    spool folder after it (``check_mode``: only say so); the paths default to BlueMind's. Returns
    ``dict(changed, bm_ini, cyrus_replication, backup_spool, left_as_is, diff=dict(before, after))``, the
    old values replaced in each file (a missing file is skipped); raises FilesError."""
    bm_ini_path = bm_ini_path or BM_INI_PATH
    cyrus_replication_path = cyrus_replication_path or CYRUS_REPLICATION_PATH
    backup_spool = backup_spool or BACKUP_SPOOL
    done = dict(changed=False, bm_ini=[], cyrus_replication=[], backup_spool={}, left_as_is=[],
                diff=dict(before={}, after={}))
    for key, path, rewrite in (("bm_ini", bm_ini_path, rewrite_bm_ini),
                               ("cyrus_replication", cyrus_replication_path, rewrite_core_sync_host)):
        if not os.path.exists(path):
            continue
        with open(path) as handle:
            text = handle.read()
        new_text, done[key] = rewrite(text, old_addresses, new_address)
        if not done[key]:
            continue
        done["changed"] = True
        done["diff"]["before"][path], done["diff"]["after"][path] = text, new_text
        if not check_mode:
            try:
                write_like(path, new_text)
            except OSError as exc:
                raise FilesError("cannot rewrite %s: %s" % (path, exc), done)
    rename, reason = spool_rename(backup_spool, old_addresses, new_address)
    if reason:
        done["left_as_is"].append(reason)
    if rename:
        done["changed"] = True
        done["backup_spool"] = {"from": rename[0], "to": rename[1]}
        done["diff"]["before"]["backup spool"], done["diff"]["after"]["backup spool"] = rename
        if not check_mode:
            try:
                os.rename(rename[0], rename[1])
            except OSError as exc:
                raise FilesError("cannot rename the backup spool %s to %s: %s" % (rename + (exc,)), done)
    return done
