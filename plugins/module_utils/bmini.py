# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BlueMind's /etc/bm/bm.ini, read once for every module that needs it."""

from __future__ import annotations

import configparser


def global_settings(text):
    """The ``[global]`` section of bm.ini's ``text``, quotes stripped as BlueMind does; {} when the
    section is absent or the text is not an ini file."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    if not parser.has_section("global"):
        return {}
    return dict((key, value.strip().strip('"')) for key, value in parser.items("global"))


def read_global_settings(path):
    """:func:`global_settings` of the file at ``path``; {} when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return global_settings(handle.read())
    except (IOError, OSError):
        return {}
