"""Which row differences a delivery on the target explains, for the checks that compare a migrated
target with its origin (molecule scenarios, the bench).

Once the target serves, the cutover's smoke check delivers a message to it. The simulator writes it
as BlueMind would (lab/FIDELITY.md rows 24-25): a message body, a mailbox record and the
simulator's change row, and through the schema's triggers a container item, a change-log row, its
change-set partition's row, a conversation reference in one of its partitions, and the mailbox's
item counter updated in place. Nothing else may differ.
The same holds on the lab's 5.x flavour: its delivery (bm-core's LMTP) writes a zstd body file by hash
instead of Cyrus files but the same rows (lab/FIDELITY.md row 5x-rows).
"""
import re

# Tables a delivery adds rows to (at most this many per message), by name or partition prefix.
GROWS = {
    "public.t_message_body": 1,
    "public.t_mailbox_record": 1,
    "public.t_changeset": 1,
    "public.t_container_item": 1,
    "public.t_container_changelog": 1,
    "public.t_container": 1,  # a mailbox's first message makes its container (and its counter row)
}
# A partition, or its partitioned parent when a check counts that too (the bench does: relkind 'p').
GROWS_PARTITIONS = {
    re.compile(r"^public\.t_container_changeset(_\d+)?$"): 2,  # first and last change of the item
    re.compile(r"^public\.t_conversationreference(_\d+)?$"): 1,
}
# Tables whose rows a delivery updates in place (one row per mailbox delivered to).
UPDATES = {"public.v_container_item_counter"}


def _grows_by(table):
    if table in GROWS:
        return GROWS[table]
    return next((n for pattern, n in GROWS_PARTITIONS.items() if pattern.match(table)), 0)


def count_explained(table, origin_rows, target_rows, messages):
    """True when the target's row count of ``table`` differs from the origin's only by ``messages`` deliveries."""
    grown = int(target_rows) - int(origin_rows)
    return 0 < grown <= _grows_by(table) * messages or (table in UPDATES and 0 <= grown <= messages)


def content_explained(table, missing, added, messages):
    """True when ``missing`` origin rows absent from the target and ``added`` target rows absent from the
    origin are what ``messages`` deliveries wrote (no origin row lost, except counters updated in place)."""
    if table in UPDATES:
        return missing <= messages and missing <= added <= missing + messages
    return missing == 0 and 0 < added <= _grows_by(table) * messages
