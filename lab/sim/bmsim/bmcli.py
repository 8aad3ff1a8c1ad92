"""A stand-in for BlueMind's `bm-cli` (the admin command line): records each call in
/var/log/bm-sim/bm-cli.jsonl. It knows:

- `bm-cli tick reconfigure` (the monitoring reconfiguration the vendor's address change ends with);
- 5.x only, the maintenance commands the 5.x procedure uses, with the syntax of BlueMind's picocli
  classes (mdhender/bluemindfork master, parent/cli/net.bluemind.cli.adm):
  - `bm-cli maintenance update-fw` (UpdateFirewallCommand: IInternalFirewallMgmt.updateFirewallRules
    through the core's admin API, follows the task, prints "Firewall rules updated");
  - `bm-cli maintenance repair (<target> | --direntry-uid UID | --all-domains) [--ops a,b]
    [--dry] [--verbose] [--domain-only] [--workers N] [--match RE] [--progress]` (RepairCommand,
    SingleOrDomainOperation: <target> is an email address or a domain name; --all-domains is every
    domain except global.virt). The simulator carries out the op `domain.keycloak`
    (KeycloakRealmRepairSupport) on the domain entries it reaches; other ops are recorded only.
Anything else exits 2 like an unknown command.
"""
import json
import os
import sys
import time
from urllib.request import Request, urlopen

from bmsim import common

KNOWN = (["tick", "reconfigure"],)
CORE = os.environ.get("BMSIM_CORE_URL", "http://127.0.0.1:8090")


def core_call(method, path, body=None):
    """Call the core's API on its own port with the core token, as bm-cli's admin context does."""
    req = Request(CORE + path, method=method, data=None if body is None else json.dumps(body).encode(),
                  headers={"X-BM-ApiKey": common.read_token() or ""})
    with urlopen(req, timeout=30) as resp:
        data = resp.read().decode()
    return json.loads(data) if data else None


def update_fw(args):
    if args:
        raise UsageError("update-fw takes no argument")
    task = core_call("POST", "/internal-api/system/firewall/_updatefirewallrules")
    for _ in range(120):
        status = core_call("GET", "/api/tasks/%s" % task["id"])
        if status.get("state") not in ("InProgress", "NotStarted"):
            break
        time.sleep(0.5)
    if status.get("state") == "Success":
        print("Firewall rules updated")
        return 0
    print("Cannot update firewall rules %s: %s" % (status.get("state"), status.get("result")), file=sys.stderr)
    return 1


class UsageError(Exception):
    pass


def parse_repair(args):
    opts = {"target": None, "direntry_uid": None, "all_domains": False, "ops": None, "dry": False,
            "verbose": False, "domain_only": False}
    it = iter(args)
    for a in it:
        if a in ("--dry", "--verbose", "--domain-only", "--progress", "--all-domains"):
            opts[a[2:].replace("-", "_")] = True
        elif a.split("=", 1)[0] in ("--ops", "--direntry-uid", "--workers", "--match"):
            name, _, value = a.partition("=")
            value = value or next(it, None)
            if value is None:
                raise UsageError("Missing required parameter for option '%s'" % name)
            opts[name[2:].replace("-", "_")] = value
        elif a.startswith("-"):
            raise UsageError("Unknown option: '%s'" % a)
        elif opts["target"] is None:
            opts["target"] = a
        else:
            raise UsageError("Unmatched argument: '%s'" % a)
    scopes = sum(1 for k in ("target", "direntry_uid") if opts[k]) + int(opts["all_domains"])
    if scopes != 1:
        raise UsageError("Error: exactly one of <target>, --direntry-uid, --all-domains is required")
    return opts


def repair_domains(opts):
    """The domains whose DOMAIN entry the repair reaches (the entry of a domain is the domain)."""
    with common.connect("bj") as conn, conn.cursor() as cur:
        if opts["all_domains"]:
            cur.execute("SELECT name FROM t_domain WHERE NOT global ORDER BY name")
            return [r[0] for r in cur.fetchall()]
        if opts["direntry_uid"]:
            cur.execute("SELECT name FROM t_domain WHERE name = %s", (opts["direntry_uid"],))
        else:
            name = opts["target"].split("@")[-1]
            if "@" in opts["target"]:
                return []  # a user's entries: no DOMAIN entry, so no domain.keycloak
            cur.execute("SELECT name FROM t_domain WHERE name = %s OR %s = ANY(aliases)", (name, name))
        return [r[0] for r in cur.fetchall()]


def repair(args):
    opts = parse_repair(args)
    ops = [o for o in (opts["ops"] or "").split(",") if o]
    domains = repair_domains(opts)
    if not domains and not (opts["target"] and "@" in opts["target"]):
        raise UsageError("Your search for '%s' did not match anything"
                         % (opts["target"] or opts["direntry_uid"] or "all domains except global.virt"))
    done = []
    if not ops or "domain.keycloak" in ops:
        from bmsim import keycloak
        for d in domains:
            lines, problem, repaired = keycloak.op_lines(d, dry=opts["dry"])
            print("\n".join(lines))
            done.append({"domain": d, "problem": problem, "repaired": repaired})
    common.log_event("bm-cli", event="repair", ops=ops, domains=domains, results=done)
    return 0


MAINTENANCE = {"update-fw": update_fw, "repair": repair}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    known = argv in [list(k) for k in KNOWN] or (
        len(argv) >= 2 and argv[0] == "maintenance" and argv[1] in MAINTENANCE and common.major() >= 5)
    common.log_event("bm-cli", argv=argv, known=known)
    if not known:
        sys.stderr.write("Unknown command: %s (the simulated bm-cli knows 'tick reconfigure' and, on 5.x, "
                         "'maintenance update-fw' and 'maintenance repair')\n" % " ".join(argv))
        return 2
    if argv[0] == "tick":
        print("tick reconfiguration requested")
        return 0
    try:
        return MAINTENANCE[argv[1]](argv[2:])
    except UsageError as exc:
        sys.stderr.write("%s\n" % exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
