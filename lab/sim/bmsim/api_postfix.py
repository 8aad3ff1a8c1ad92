"""Postfix side of the simulated admin API: `mynetworks` and the maps of the mail maintenance repair.

The maps follow BlueMind's generators (net.bluemind.backend.postfix.internal.maps): each map is
written as `<map>-flat`, built with `postmap`, and the resulting `<map>-flat.db` is renamed to
`<map>.db`, which is what main.cf reads (`hash:/etc/postfix/<map>`). Then postfix is reloaded.
"""
import ipaddress
import os
import re
import subprocess
import threading

from bmsim.common import write_atomic

POSTFIX_DIR = os.environ.get("BMSIM_POSTFIX_DIR", "/etc/postfix")
MAPS = ("virtual_domains", "virtual_mailbox", "virtual_alias", "transport", "master_relay_transport")
# Where postfix hands mail for a BlueMind domain (bm-lmtpd; also main.cf's virtual_transport).
LMTP_NEXTHOP = "lmtp:inet:127.0.0.1:2400"
LOOPBACK = "127.0.0.0/8"

_maps_lock = threading.Lock()  # two repairs must not interleave their postmap/rename steps


def _run(argv):
    """Run a postfix tool; a failure raises RuntimeError with the tool's own message."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(argv[:2]), proc.returncode,
                                                        (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def reload_postfix():
    """`postfix reload` when postfix runs (a stopped postfix reads the new settings when started)."""
    if subprocess.run(["postfix", "status"], capture_output=True).returncode == 0:
        _run(["postfix", "reload"])


class InvalidMyNetworks(ValueError):
    """The value BlueMind's MyNetworksValidator refuses (the API answers 500 INVALID_PARAMETER)."""


def mynetworks_parts(value):
    """MyNetworksSanitizor.getSanitizedParts: split on " " then ",", trim, one leading "!" off."""
    parts = set()
    for chunk in value.split(" "):
        for part in chunk.split(","):
            part = part.strip()
            if part.startswith("!"):
                part = part[1:]
            if part:
                parts.add(part)
    return parts


def validate_mynetworks(value):
    """MyNetworksValidator: not empty; each part an address, with an optional numeric mask in range."""
    if not value:
        raise InvalidMyNetworks("mynetworks must not be empty")
    for part in mynetworks_parts(value):
        pieces = part.split("/")
        if len(pieces) > 2:
            raise InvalidMyNetworks("Invalid mynetworks: " + value)
        if len(pieces) == 2:
            try:
                mask = int(pieces[1])
            except ValueError:
                raise InvalidMyNetworks("Invalid mynetworks: " + value) from None
            if not 0 <= mask <= (128 if ":" in pieces[0] else 32):
                raise InvalidMyNetworks("Invalid mynetworks: " + value)
        try:
            ipaddress.ip_address(pieces[0].replace("[", "").replace("]", ""))
        except ValueError:
            raise InvalidMyNetworks("Invalid mynetworks: %s - must contain only IP or subnet" % part) from None


def host_ipv4_addresses():
    """The host's non-loopback IPv4 addresses that have a broadcast address (as Java's
    NetworkInterface gives them to MyNetworksSanitizor.getDefaultValue)."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        m = re.search(r"\binet\s+([0-9.]+)/\d+\s+brd\s", line)
        if m and not m.group(1).startswith("127"):
            found.append(m.group(1))
    return found


def normalise_mynetworks(value, server_ips, host_ips):
    """BlueMind's treatment of `mynetworks` (MyNetworksValidator then MyNetworksSanitizor).

    Refuses an invalid value (InvalidMyNetworks). Entries are kept as written (a set of strings);
    127.0.0.0/8, every t_server address as /32 and every non-loopback IPv4 of the host as /32 are
    always added. `value` None gives the default (no value before, none given). The real server
    joins a HashSet (no order); the simulator sorts, which makes it stable. Joined with ", ".
    """
    entries = set()
    if value is not None:
        validate_mynetworks(value)
        entries = mynetworks_parts(value)
    entries.add(LOOPBACK)
    entries.update(ip + "/32" for ip in server_ips if ip)
    entries.update(ip + "/32" for ip in host_ips if ip)
    return ", ".join(sorted(entries))


def apply_mynetworks(value):
    """Give postfix the (normalised) value, as BlueMind's configuration hook does."""
    _run(["postconf", "-e", "mynetworks=" + value])
    reload_postfix()


def build_maps(domains, mailboxes, aliases):
    """Text of the five maps.

    domains:   [(name, [alias domain, ...])]        (t_domain, global domain excluded)
    mailboxes: [(login, domain)]                    (active users; the mailbox is login@domain)
    aliases:   [(local part, domain, login, login's domain)]  (t_mailbox_alias)
    Like BlueMind: every address of a mailbox (in its domain and the domain's aliases) maps to the
    mailbox in virtual_alias; virtual_mailbox lists mailboxes; master_relay_transport only lists
    domains that forward to a slave relay, and no lab domain does, so it is empty.
    """
    names = {name: [name] + sorted(domain_aliases or []) for name, domain_aliases in domains}
    mailbox_lines, alias_lines = [], []
    for login, domain in mailboxes:
        mailbox = "%s@%s" % (login, domain)
        mailbox_lines.append("%s OK" % mailbox)
        alias_lines.extend("%s@%s %s" % (login, d, mailbox) for d in names.get(domain, [domain]))
    for local, domain, login, login_domain in aliases:
        mailbox = "%s@%s" % (login, login_domain)
        alias_lines.extend("%s@%s %s" % (local, d, mailbox) for d in names.get(domain, [domain]))
    all_domains = [d for name in sorted(names) for d in names[name]]

    def text(lines):
        return "".join(line + "\n" for line in lines)

    return {
        "virtual_domains": text("%s OK" % d for d in all_domains),
        "virtual_mailbox": text(sorted(mailbox_lines)),
        "virtual_alias": text(sorted(alias_lines)),
        "transport": text("%s %s" % (d, LMTP_NEXTHOP) for d in all_domains),
        "master_relay_transport": "",
    }


def install_maps(maps):
    """Write each `<map>-flat`, postmap it, move `<map>-flat.db` over `<map>.db`, reload postfix."""
    with _maps_lock:
        for name in MAPS:
            flat = os.path.join(POSTFIX_DIR, name + "-flat")
            write_atomic(flat, maps[name])
            _run(["postmap", "hash:" + flat])
            os.replace(flat + ".db", os.path.join(POSTFIX_DIR, name + ".db"))
        reload_postfix()
