# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of one migration for the origin's BlueMind major, on the controller (module_utils/profile.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bluemind_profile
short_description: What to pull, copy, call and check for the origin's BlueMind major
version_added: 1.2.0
description:
  - From the origin's BlueMind version (or an explicit major, which wins), gives the data trees, the
    configuration paths and patterns, the databases, the admin calls and the checks of that major.
  - With the trees and configuration paths found on the origin, also says which of them a pull moves
    and which required ones are missing. The operator's own lists, when not empty, are used as given.
  - Fails with a message that says what to set when the major cannot be told or is not 4 or 5.
positional: major
options:
  _input:
    description: The origin's BlueMind version (V(4.9.3884), V(5.7.3268-1)); may be empty when O(major) is given.
    type: str
    required: true
  major:
    description: The major to plan for (V(4), V(5)); overrides the version when not empty.
    type: raw
  existing:
    description: The trees found on the origin (paths); without it, RV(_value.pull_trees) is the profile's trees.
    type: list
    elements: str
  trees:
    description: The operator's tree list; when not empty, pulled as given and none is reported missing.
    type: list
    elements: str
  config_paths:
    description: The operator's configuration paths; when not empty they replace the profile's.
    type: list
    elements: str
  config_globs:
    description: The operator's configuration patterns; when not empty they replace the profile's.
    type: list
    elements: str
  existing_config:
    description: The configuration paths (relative to /) found on the origin, to name the missing ones.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Plan the migration for the origin's major
  ansible.builtin.set_fact:
    plan: "{{ origin_version | bluemind.migration.bluemind_profile(bluemind_major, existing=found, trees=bluemind_trees) }}"
"""

RETURN = r"""
_value:
  description:
    - The profile (C(major), C(trees), C(required_trees), C(left_behind), C(config_paths), C(config_globs),
      C(databases), C(admin), C(checks)) and the resolved C(pull_trees), C(missing_trees), C(absent_trees)
      (the profile's trees not found on the origin, not pulled), C(copy_paths),
      C(copy_globs), C(missing_config).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.bluemind.migration.plugins.module_utils import profile as bm_profile


def bluemind_profile(version, major=None, existing=None, trees=None, config_paths=None, config_globs=None,
                     existing_config=None):
    try:
        plan = bm_profile.profile(version, major)
    except bm_profile.ProfileError as exc:
        raise AnsibleFilterError(str(exc))
    found = plan["trees"] if existing is None else existing
    plan["pull_trees"] = bm_profile.trees_to_pull(plan, found, trees)
    plan["missing_trees"] = bm_profile.missing_required(plan, found, trees)
    plan["absent_trees"] = [] if trees else [t for t in plan["trees"] if t not in plan["pull_trees"]]
    config = bm_profile.config_lists(plan, config_paths, config_globs)
    plan["copy_paths"], plan["copy_globs"] = config["paths"], config["globs"]
    plan["missing_config"] = ([] if existing_config is None
                              else bm_profile.missing_config(plan, existing_config, config_paths))
    plan["candidate_trees"] = list(trees) if trees else bm_profile.candidate_trees()
    return plan


class FilterModule:
    def filters(self):
        return {"bluemind_profile": bluemind_profile}
