"""Postfix side of the simulated admin API: `mynetworks` and the maps of the mail maintenance repair.

The maps follow BlueMind's generators (net.bluemind.backend.postfix.internal.maps): each map is
written as `<map>-flat`, built with `postmap`, and the resulting `<map>-flat.db` is renamed to
`<map>.db`, which is what main.cf reads (`hash:/etc/postfix/<map>`). Then postfix is reloaded.
"""
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


def normalise_mynetworks(value, host_ip):
    """BlueMind's treatment of `mynetworks`: add loopback and the server's own address, drop duplicates.

    Entries are separated by commas and/or blanks. The server keeps a set, so the order given is
    not kept (the result is sorted, which makes it stable). Returns the value joined with ", ".
    """
    entries = {e for e in re.split(r"[\s,]+", value) if e}
    entries.add(LOOPBACK)
    if host_ip:
        entries.add(host_ip + "/32")
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
