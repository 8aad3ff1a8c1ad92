# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The [global] section of BlueMind's bm.ini, on the controller (module_utils/bmini.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bm_ini_global
short_description: The settings of the [global] section of BlueMind's bm.ini
version_added: 1.2.0
description:
  - Parses the text of C(/etc/bm/bm.ini) as the collection's modules do (one parser for all) and
    returns its C([global]) section as a dict, the quotes BlueMind strips stripped.
  - An empty dict when the text has no C([global]) section or is not an ini file.
options:
  _input:
    description: The text of bm.ini (for instance a slurped file's content, decoded).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Keep the database password of each side
  ansible.builtin.set_fact:
    passwords: "{{ slurped.results | map(attribute='content') | map('b64decode')
                   | map('bluemind.migration.bm_ini_global') | map(attribute='password', default='') | list }}"
"""

RETURN = r"""
_value:
  description: The keys of [global] (C(host), C(external-url), C(password), ...) and their values.
  type: dict
"""

from ansible_collections.bluemind.migration.plugins.module_utils import bmini


def bm_ini_global(text):
    return bmini.global_settings(text or "")


class FilterModule:
    def filters(self):
        return {"bm_ini_global": bm_ini_global}
