# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proof that a message was delivered, through the product's own records: its rows in ``bj-data``.

Files cannot prove it on every major: BlueMind 5.x stores bodies zstd-compressed under
``/var/spool/cyrus/data/by_hash/<c0>/<c1>/<guid>.zst`` (sds.store.cyrusspool SpoolBackingStore), so a
header never appears in clear. Both majors index every delivered message in ``bj-data``: one
``t_message_body`` row per body (``guid``, ``subject``, ``message_id``, ...) and one ``t_mailbox_record``
row per mailbox it landed in (``message_body_guid`` = the body's ``guid``): bluemindfork
``parent/mailbackend/net.bluemind.backend.mail.replica.sqlschema/sql/mailreplica-schema-1.0.0.sql`` at
410e30fb0 (4.x) and 5d708160dd56 (5.x, where ``t_mailbox_record`` is partitioned by ``subtree_id``; the
parent table is queried). The subject is matched: it is in both schemas (and in the lab's).
"""

from __future__ import annotations

import time

from ansible_collections.bluemind.migration.plugins.module_utils.pg import quote_literal


def delivery_sql(subject):
    """Bodies with this subject, and the mailbox records that point at them."""
    return ("SELECT count(DISTINCT b.guid), count(r.message_body_guid) FROM t_message_body b "
            "JOIN t_mailbox_record r ON r.message_body_guid = b.guid WHERE b.subject = %s" % quote_literal(subject))


def parse_counts(rows):
    """``(bodies, records)`` from the query's one row."""
    if not rows:
        return 0, 0
    bodies, records = rows[0][:2]
    return int(bodies or 0), int(records or 0)


def wait_for_delivery(count, timeout, sleep=None, clock=None, delay=2.0):
    """Call ``count()`` (returning ``(bodies, records)``) until a record exists or ``timeout`` seconds
    passed; return ``(bodies, records, seconds waited, attempts)``."""
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    started = clock()
    attempts = 0
    while True:
        attempts += 1
        bodies, records = count()
        waited = clock() - started
        if records > 0 or waited >= timeout:
            return bodies, records, round(waited, 1), attempts
        sleep(min(delay, max(0.0, timeout - waited)))
