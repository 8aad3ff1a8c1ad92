"""Which Docker networks stand in the way of a lab's or a molecule scenario's subnet (lab/networks.py)."""
import importlib.util
import ipaddress
from pathlib import Path

_spec = importlib.util.spec_from_file_location("networks", Path(__file__).resolve().parents[2] / "lab" / "networks.py")
networks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(networks)

NET = ipaddress.ip_network


def network(name, subnet, containers=0, labels=None):
    return {"Name": name, "Labels": labels or {}, "IPAM": {"Config": [{"Subnet": subnet}] if subnet else []},
            "Containers": {f"c{i}": {} for i in range(containers)}}


def test_the_scenarios_subnets_are_read_from_their_files_and_clear_of_the_labs_defaults():
    declared = networks.molecule_subnets()
    assert declared["bmmol"] == NET("172.30.98.0/24")
    assert declared["bmmol-pairs"] == NET("172.30.96.0/24")
    # lab.sh's default lab and the bench's lab
    for lab_subnet in (NET("172.30.99.0/24"), NET("172.30.97.0/24")):
        assert not any(s.overlaps(lab_subnet) for s in declared.values())


def test_an_empty_network_of_ours_is_removed_one_with_containers_or_not_ours_blocks():
    wanted = NET("172.30.96.0/24")
    present = [
        network("bmtest", "172.30.96.0/24"),                                  # stop 26's leftover side lab
        network("mylab", "172.30.0.0/16", labels={"bmlab.network": "1"}),     # ours by label, overlapping
        network("bmlab", "172.30.96.0/24", containers=2),                    # ours but in use
        network("corp", "172.30.96.128/25"),                                 # someone else's
        network("bmbench", "172.30.97.0/24"),                                # no overlap
        network("host", None),                                               # no subnet at all
        network("bmmol-pairs", "172.30.96.0/24"),                            # the one wanted: reused
    ]
    removable, blocking = networks.in_the_way(present, wanted, keep="bmmol-pairs")
    assert [n["Name"] for n in removable] == ["bmtest", "mylab"]
    assert [n["Name"] for n in blocking] == ["bmlab", "corp"]


def test_a_lab_on_a_scenarios_subnet_is_refused_before_docker_is_asked(monkeypatch):
    def docker_asked():
        raise AssertionError("docker asked")

    monkeypatch.setattr(networks, "docker_networks", docker_asked)
    error = networks.main(["lab", "172.30.96.0/24", "bmtest"])
    assert "bmmol-pairs" in error and "BMLAB_NET" in error


def test_a_blocking_network_is_named_in_the_error(monkeypatch):
    monkeypatch.setattr(networks, "docker_networks", lambda: [network("corp", "172.30.95.0/24", containers=1)])
    error = networks.main(["lab", "172.30.95.0/24", "bmside"])
    assert error.startswith("ERROR: ") and "corp (1 containers)" in error
    monkeypatch.setattr(networks, "docker_networks", lambda: [])
    assert networks.main(["lab", "172.30.95.0/24", "bmside"]) == 0
