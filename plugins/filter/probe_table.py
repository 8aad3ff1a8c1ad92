# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe's rows as the one text table the operator reads and sends back."""

from __future__ import annotations

DOCUMENTATION = r"""
name: probe_table
short_description: The probe's rows as one text table
version_added: 1.2.0
description:
  - Renders the rows of P(bluemind.migration.probe_rows#filter) as lines of a table (row number, id,
    status, what was found) followed by a count of each status.
options:
  _input:
    description: The rows of P(bluemind.migration.probe_rows#filter).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Print the table
  ansible.builtin.debug:
    msg: "{{ probe_observed | bluemind.migration.probe_rows({'trees': bluemind_trees}) | bluemind.migration.probe_table }}"
"""

RETURN = r"""
_value:
  description: The lines of the table, the header first and the counts last.
  type: list
  elements: str
"""

CONFIRMED = "confirmed"
DIFFERS = "differs"
NOT_OBSERVABLE = "not observable"


def probe_table(rows):
    """The rows as one text table (a list of lines, for debug's msg)."""
    header = ("#", "id", "status", "what was found")
    body = [(str(r["row"]), r["id"], r["status"], r["found"]) for r in rows]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(3)]
    lines = [" | ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(line))
             for line in [header] + body]
    lines.insert(1, "-+-".join("-" * w for w in widths) + "-+-" + "-" * 14)
    counts = dict((s, sum(1 for r in rows if r["status"] == s)) for s in (CONFIRMED, DIFFERS, NOT_OBSERVABLE))
    lines.append("%d confirmed, %d differ, %d not observable"
                 % (counts[CONFIRMED], counts[DIFFERS], counts[NOT_OBSERVABLE]))
    return lines


class FilterModule:
    def filters(self):
        return {"probe_table": probe_table}
