"""Fixtures for tests that run against the lab (`make lab`): two containers, origin and target."""
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labpaths import LAB_NAME, LAB_STATE, TOP  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "bluemind(major): needs a lab of that BlueMind flavour "
                            "(lab.sh's BMLAB_BLUEMIND); skipped on a lab of the other one")


@pytest.fixture(autouse=True)
def _bluemind_flavour(request):
    """Skip a test marked bluemind(N) when the running lab is another flavour, saying so."""
    marker = request.node.get_closest_marker("bluemind")
    if marker is None:
        return
    lab = request.getfixturevalue("lab")
    if lab.bluemind != marker.args[0]:
        pytest.skip("BlueMind %d behaviour (%s); the running lab is BlueMind %d (make lab BLUEMIND=%d)"
                    % (marker.args[0], marker.kwargs.get("reason", "its layout"), lab.bluemind, marker.args[0]))


@dataclass
class LabHost:
    role: str
    name: str
    ip: str

    @property
    def api_url(self):
        return f"https://{self.ip}"

    def run(self, cmd, check=True, timeout=300, input=None):
        """Run `cmd` with bash inside the host (as root); returns the CompletedProcess (text)."""
        proc = subprocess.run(
            ["docker", "exec", "-i", self.name, "bash", "-c", cmd],
            capture_output=True, text=True, timeout=timeout, input=input, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{self.role}: `{cmd}` exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc


@dataclass
class Lab:
    origin: LabHost
    target: LabHost
    ca_file: str
    admin_login: str
    admin_password: str
    ssh_key: str
    known_hosts: str
    bluemind: int = 4  # the lab's flavour (lab.sh's BMLAB_BLUEMIND, "bluemind" in lab.json)

    def host(self, role):
        return getattr(self, role)


def _running(name):
    proc = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


@pytest.fixture(scope="session")
def lab():
    if not LAB_STATE.exists() or not all(_running(LAB_NAME + h) for h in ("-origin", "-target")):
        if os.environ.get("BMLAB_REQUIRED"):
            pytest.fail("the lab %s is not up: run `make lab` (make test does it)" % LAB_NAME)
        pytest.skip("no lab %s is up (%s missing): run `make lab`, or `make test` which starts it"
                    % (LAB_NAME, LAB_STATE.relative_to(TOP)))
    state = json.loads(LAB_STATE.read_text())
    hosts = {role: LabHost(role, h["name"], h["ip"]) for role, h in state["hosts"].items()}
    return Lab(origin=hosts["origin"], target=hosts["target"], ca_file=state["ca_file"],
               admin_login=state["admin_login"], admin_password=state["admin_password"],
               ssh_key=state["ssh_key"], known_hosts=state["known_hosts"],
               bluemind=int(state.get("bluemind", 4)))
