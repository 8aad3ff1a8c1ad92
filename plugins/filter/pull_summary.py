# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one pull of the trees moved, a line a tree, from bluemind_sync's RV(trees)."""

from __future__ import annotations

from ansible.module_utils.common.text.formatters import bytes_to_human

DOCUMENTATION = r"""
name: pull_summary
short_description: What one pull moved, a line a tree
version_added: 1.1.0
description:
  - One line for each tree of a pull, in the pull's order, saying the files and bytes moved, the
    time taken, the changes and deletions, the files that vanished, and how the pull found what
    changed (the directories whose entries were compared, the files compared by content).
  - One task shows every tree (a loop would be one task output a tree, some 0.05 s each in the cold
    window).
options:
  _input:
    description: The RV(bluemind.migration.bluemind_sync#module:trees) result.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Show what each tree moved
  ansible.builtin.debug:
    msg: "{{ pulled.trees | bluemind.migration.pull_summary }}"
"""

RETURN = r"""
_value:
  description: One line a tree.
  type: list
  elements: str
"""


def tree_line(tree):
    tree = tree or {}
    extra = ""
    if tree.get("vanished"):
        extra += ", %d vanished" % tree["vanished"]
    if tree.get("incremental"):
        extra += ", the entries of %d directories changed since the last pull compared" % tree.get("changed_dirs", 0)
    if tree.get("recent") is not None:
        extra += ", %d modified since the last pull compared by content" % tree["recent"]
    return "%s: %d files, %s in %.1f s (%d changes, %d deleted%s)" % (
        tree.get("path", "?"), int(tree.get("files") or 0), bytes_to_human(int(tree.get("bytes") or 0)),
        float(tree.get("seconds") or 0), int(tree.get("changes") or 0), int(tree.get("deleted") or 0), extra)


def pull_summary(trees):
    return [tree_line(tree) for tree in trees or []]


class FilterModule:
    def filters(self):
        return {"pull_summary": pull_summary}
