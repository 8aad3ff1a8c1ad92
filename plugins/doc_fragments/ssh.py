# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # SSH from the target to the origin (module_utils/ssh.py, ssh_argument_spec).
    DOCUMENTATION = r"""
options:
  origin_host:
    description:
      - Address or name of the origin server, as the target reaches it.
    type: str
    required: true
  origin_user:
    description:
      - User on the origin. Reading every tree and keeping owners needs V(root).
    type: str
    default: root
  ssh_key:
    description:
      - Private key on the target that the origin accepts for O(origin_user).
    type: path
    required: true
  known_hosts:
    description:
      - File on the target pinning the origin's host key. The host key is checked strictly against
        this file only; an unknown or changed key fails the task.
    type: path
    required: true
  ssh_port:
    description:
      - SSH port of the origin.
    type: int
    default: 22
  ssh_connect_timeout:
    description:
      - Seconds to wait for the SSH connection to the origin.
    type: int
    default: 15
"""
