# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What names a BlueMind server's address besides bm.ini, t_server and t_systemconf.

From the vendor's "Changing a BlueMind Server's IP Address" (bluemind-doc) and an integrator's
``bm-change-url.sh`` (corpusops/setups.bluemind):

- ``rc_users.mail_host`` in database ``bj``: the webmail's (Roundcube's) IMAP host per user;
- ``core_sync_host:`` in ``/etc/cyrus-replication`` (4.x);
- the backup spool ``/var/backups/bluemind/dp_spool/rsync/<address>`` (dataprotect's ``BackupPath``).
"""

from __future__ import annotations

import os
import re

from ansible_collections.bluemind.migration.plugins.module_utils.pg import quote_literal

CORE_SYNC_HOST = re.compile(r"^(?P<key>\s*core_sync_host\s*:\s*)(?P<value>\S+)(?P<rest>\s*)$", re.MULTILINE)


def rewrite_core_sync_host(text, old_addresses, new_address):
    """``text`` with each ``core_sync_host:`` naming an old address set to ``new_address``.

    Returns ``(new_text, [old values replaced])``; a value that is not one of ``old_addresses``
    (another server) is left alone.
    """
    old = set(old_addresses)
    replaced = []

    def swap(match):
        if match.group("value") not in old:
            return match.group(0)
        replaced.append(match.group("value"))
        return match.group("key") + new_address + match.group("rest")

    return CORE_SYNC_HOST.sub(swap, text), replaced


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


WEBMAIL_TABLE_SQL = "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'rc_users'"


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
