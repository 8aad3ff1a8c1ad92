# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BlueMind's "My Networks" (``mynetworks``) as the server treats it, and the address swap of a move.

The server (bluemindfork ``net.bluemind.backend.systemconf.internal.MyNetworksValidator`` and
``MyNetworksSanitizor``) splits the value on spaces and commas, trims each entry and strips one
leading ``!``; it refuses (HTTP 500, ``INVALID_PARAMETER``) an entry that is not an address, or
an address with a mask that is not a number in 0-32 (IPv4) or 0-128 (IPv6); it keeps the entries as
written (a set of strings: no canonical form, order lost) and always adds ``127.0.0.0/8``, every
``t_server`` address as ``<ip>/32`` and every non-loopback IPv4 address of the host as ``/32``.
"""

from __future__ import annotations

import ipaddress
import re

LOOPBACK = "127.0.0.0/8"


class InvalidMyNetworksError(ValueError):
    """An entry the server would refuse with ``Invalid mynetworks``."""


def sanitized_parts(value):
    """The entries the server reads from ``value``: split on spaces and commas, trimmed, one ``!`` off."""
    parts = set()
    for part in re.split(r"[ ,]", value or ""):
        part = part.strip()
        if part.startswith("!"):
            part = part[1:]
        if part:
            parts.add(part)
    return parts


def _is_address(text):
    try:
        ipaddress.ip_address(re.sub(r"[\[\]]", "", text))
    except ValueError:
        return False
    return True


def validate(value):
    """Raise :class:`InvalidMyNetworksError` where the server would answer 500; return the entries."""
    if not (value or "").strip():
        raise InvalidMyNetworksError("mynetworks is empty: BlueMind refuses an empty value")
    parts = sanitized_parts(value)
    for part in sorted(parts):
        pieces = part.split("/")
        if len(pieces) > 2:
            raise InvalidMyNetworksError("Invalid mynetworks entry '%s'" % part)
        if len(pieces) == 2:
            limit = 128 if ":" in pieces[0] else 32
            if not re.match(r"^[+-]?\d+$", pieces[1]) or not 0 <= int(pieces[1]) <= limit:
                raise InvalidMyNetworksError("Invalid mynetworks entry '%s': the mask must be 0-%d" % (part, limit))
        if not _is_address(pieces[0]):
            raise InvalidMyNetworksError(
                "Invalid mynetworks entry '%s': must contain only IP or subnet" % part)
    return parts


def server_added(server_addresses):
    """What the server adds on its own: loopback and each of its addresses as ``/32``."""
    return {LOOPBACK} | set("%s/32" % a for a in server_addresses if a)


def predict(value, server_addresses):
    """The set of entries the server holds after it was sent ``value`` (validated first)."""
    return validate(value) | server_added(server_addresses)


def address_of(entry):
    """The address an entry names when it is one host (bare or ``/32``, ``/128``), else None."""
    try:
        network = ipaddress.ip_network(entry.lstrip("!"), strict=False)
    except ValueError:
        return None
    if network.num_addresses != 1:
        return None
    return str(network.network_address)


def replace_addresses(value, old_addresses, new_address):
    """``value`` with each entry naming one of ``old_addresses`` removed and ``new_address``/32 added.

    Networks (masks other than /32) are kept as they are: only the old server's own entries go.
    Returns the entries as a sorted list.
    """
    old = set(address_of(a) or a for a in old_addresses)
    kept = set(p for p in sanitized_parts(value) if address_of(p) not in old)
    if new_address:
        kept.add("%s/32" % new_address)
    return sorted(kept)


def join(parts):
    return ", ".join(sorted(parts))
