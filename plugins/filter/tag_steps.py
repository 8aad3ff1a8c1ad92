# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which steps of a task that runs several (one module run for what were tasks of their own) the
run's --tags and --skip-tags select."""

from __future__ import annotations

DOCUMENTATION = r"""
name: tag_steps
short_description: The steps of a several-step task that --tags and --skip-tags select
version_added: 1.1.0
description:
  - A task that runs several steps in one module run (one remote round trip in the cold window) carries
    each step's tag. This gives the steps the run selects, in the order given. A step runs when the run
    selects everything (no --tags, C(all) or C(tagged)), the step's tag or one of O(parents) (the role's
    tags), and neither its tag nor a parent is skipped.
options:
  _input:
    description: Each step name with its tag.
    type: dict
    required: true
  run_tags:
    description: C(ansible_run_tags).
    type: list
    elements: str
    required: true
  skip_tags:
    description: C(ansible_skip_tags).
    type: list
    elements: str
    required: true
  parents:
    description: The tags every step inherits (the role's, the play's).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Copy the configuration and move the queued mail, as the tags select
  bluemind.migration.bluemind_config_copy:
    steps: >-
      {{ {'files': 'config_copy_files', 'queue': 'config_copy_queue'}
         | bluemind.migration.tag_steps(ansible_run_tags, ansible_skip_tags, ['config_copy']) }}
"""

RETURN = r"""
_value:
  description: The selected steps.
  type: list
  elements: str
"""

EVERYTHING = ("all", "tagged")


def tag_steps(steps, run_tags, skip_tags, parents=()):
    run, skip, parents = set(run_tags or EVERYTHING[:1]), set(skip_tags or ()), set(parents or ())
    if parents & skip:
        return []
    chosen = []
    for step, tag in steps.items():
        if tag in skip:
            continue
        if run & set(EVERYTHING) or tag in run or parents & run:
            chosen.append(step)
    return chosen


class FilterModule:
    def filters(self):
        return {"tag_steps": tag_steps}
