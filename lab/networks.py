#!/usr/bin/env python3
"""The project's Docker networks must not overlap: Docker refuses to create a network whose subnet
overlaps another one ("Pool overlaps with other one on this address space"), and molecule then fails
its scenario's create step with a one-line "An unexpected error" (stop 26's CI: a side lab left on
two_pairs' subnet).

    networks.py lab SUBNET NAME    before lab.sh creates NAME on SUBNET: refuse a subnet a molecule
                                   scenario declares, clear our own empty networks in the way
    networks.py molecule           before the molecule scenarios: clear our own empty networks that
                                   overlap a scenario's subnet

"Our own, empty": a network lab.sh labelled (bmlab.network) or named like the project's (bm...) with no
container attached; removing it loses nothing. Anything else in the way is an error naming it.
Standard library only: lab.sh runs it with the system's python3.
"""
import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
OUR_NAMES = re.compile(r"^bm")
DECLARED = re.compile(r"name:\s*([\w.-]+)\s*,\s*ipam_config:\s*\[\s*\{\s*subnet:\s*([0-9./]+)")


def molecule_subnets(top=TOP):
    """{network name: subnet} as the molecule scenarios declare them (docker_networks)."""
    declared = {}
    for path in sorted((top / "molecule").glob("**/*.yml")):
        for name, subnet in DECLARED.findall(path.read_text()):
            declared[name] = ipaddress.ip_network(subnet)
    return declared


def ours(network):
    return "bmlab.network" in (network.get("Labels") or {}) or bool(OUR_NAMES.match(network["Name"]))


def in_the_way(networks, subnet, keep):
    """(removable, blocking): the networks other than `keep` whose subnets overlap `subnet`."""
    removable, blocking = [], []
    for network in networks:
        if network["Name"] == keep:
            continue
        subnets = [ipaddress.ip_network(c["Subnet"]) for c in (network.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
        if not any(s.version == subnet.version and s.overlaps(subnet) for s in subnets):
            continue
        (removable if ours(network) and not network.get("Containers") else blocking).append(network)
    return removable, blocking


def docker_networks():
    ids = subprocess.run(["docker", "network", "ls", "-q"], check=True, capture_output=True, text=True).stdout.split()
    if not ids:
        return []
    out = subprocess.run(["docker", "network", "inspect", *ids], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def clear(subnet, keep):
    """Remove our own empty networks overlapping `subnet`; the error message when something else is there."""
    removable, blocking = in_the_way(docker_networks(), subnet, keep)
    for network in removable:
        print(f"networks: removing the empty network {network['Name']} (it overlaps {subnet}, wanted by {keep})", file=sys.stderr)
        subprocess.run(["docker", "network", "rm", network["Name"]], check=True, capture_output=True)
    if blocking:
        names = ", ".join(f"{n['Name']} ({len(n.get('Containers') or {})} containers)" for n in blocking)
        return f"{keep} needs {subnet}, which overlaps Docker network(s) {names}: remove them or choose another subnet"
    return None


def main(argv):
    if argv[:1] == ["lab"] and len(argv) == 3:
        subnet, name = ipaddress.ip_network(argv[1]), argv[2]
        for scenario_net, reserved in molecule_subnets().items():
            if reserved.overlaps(subnet):
                return f"ERROR: the lab {name} on {subnet}: the molecule scenarios use {reserved} ({scenario_net}); choose another BMLAB_NET"
        error = clear(subnet, name)
    elif argv == ["molecule"]:
        errors = [clear(subnet, name) for name, subnet in molecule_subnets().items()]
        error = "; ".join(e for e in errors if e)
    else:
        return __doc__
    return f"ERROR: {error}" if error else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
