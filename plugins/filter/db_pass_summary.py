# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One database's line of progress, from an entry of bluemind_db_transfer's RV(databases)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: db_pass_summary
short_description: What one database pass moved, in words
version_added: 1.1.0
description:
  - Says how a database moved (copied whole and why, or the rows copied and deleted and how they were
    found), how many tables were listed and skipped as unchanged (and why none was), what was
    compared on both sides, the time taken and the settings carried over; how many of the tables
    listed were listed by their rows written since the last pass alone, and listed whole again
    after their count differed.
options:
  _input:
    description: One entry of the RV(bluemind.migration.bluemind_db_transfer#module:databases) result.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show what each database moved
  ansible.builtin.debug:
    msg: "{{ item.1 }}: {{ item.0 | bluemind.migration.db_pass_summary }}"
  loop: "{{ pass.databases | zip(['bj', 'bj-data']) | list }}"
"""

RETURN = r"""
_value:
  description: The sentence.
  type: str
"""


def _human(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return "%d B" % size


def db_pass_summary(entry):
    entry = entry or {}
    if entry.get("method") == "full":
        moved = "copied whole (%s)" % entry.get("reason", "?")
    else:
        moved = "%s rows copied, %s deleted (found by %s)" % (
            entry.get("rows_copied", 0), entry.get("rows_deleted", 0), entry.get("compared_by", "?"))
    words = ["%s in %.1f s" % (moved, float(entry.get("seconds") or 0))]
    if "tables_skipped" in entry:
        words.append("%s tables listed%s, %s skipped as unchanged on both sides%s" % (
            entry.get("tables_listed", 0),
            " (%d by their rows written since the last pass alone%s)" % (
                entry["tables_by_changes"], ", %d of them listed whole again after a count differed" % entry["tables_recounted"]
                if entry.get("tables_recounted") else "") if entry.get("tables_by_changes") else "",
            entry["tables_skipped"],
            " (none skipped: %s)" % entry["skip_blocker"] if entry.get("skip_blocker") else ""))
    if "tables" in entry:
        words.append("%s tables, %s rows identical on both sides" % (entry["tables"], entry.get("rows", "?")))
    if entry.get("bytes"):
        words.append("%s dumped" % _human(int(entry["bytes"])))
    words.append("settings carried over: %s" % (", ".join(entry.get("settings") or []) or "none"))
    return "; ".join(words)


class FilterModule:
    def filters(self):
        return {"db_pass_summary": db_pass_summary}
