# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The origin's addresses that a work module of the window replaces with readdress_to (module_utils/readdress.py).
    DOCUMENTATION = r"""
options:
  readdress_from:
    description: The origin's addresses, replaced by O(readdress_to). Empty names and O(readdress_to) itself are ignored.
    type: list
    elements: str
    default: []
"""
