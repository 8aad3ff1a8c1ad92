# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filesystem that holds a path and its free space, as the modules' messages say them."""

from __future__ import annotations

import os

# What a tool prints (strerror) when a write finds the filesystem full.
NO_SPACE = "No space left on device"
QUOTA = "Disk quota exceeded"


def mount_point(path):
    """The mount point of the filesystem that holds ``path`` (or would hold it: its nearest existing
    parent is looked at)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def human_size(size):
    """``512 bytes``, ``7.9 MiB``, ``1.2 TiB``."""
    if size < 1024:
        return "%d bytes" % size
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024.0
        if size < 1024 or unit == "TiB":
            return "%.1f %s" % (size, unit)
    return None  # not reached


def free_space(path, statvfs=os.statvfs):
    """``filesystem /srv, 7.9 MiB free of 32.0 MiB`` for the filesystem that holds ``path``; empty when it
    cannot be read."""
    try:
        mount = mount_point(path)
        st = statvfs(mount)
    except OSError:
        return ""
    return "filesystem %s, %s free of %s" % (mount, human_size(st.f_bavail * st.f_frsize),
                                             human_size(st.f_blocks * st.f_frsize))
