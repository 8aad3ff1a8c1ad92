"""execution-environment.yml builds an execution environment (AWX, Automation Platform) with this
collection: ansible-builder generates its build context offline, with the collection's tarball,
the collections galaxy.yml declares and the SSH client."""
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ee_collections_are_the_ones_galaxy_yml_declares():
    declared = yaml.safe_load((TOP / "galaxy.yml").read_text())["dependencies"]
    ee = yaml.safe_load((TOP / "ee" / "requirements.yml").read_text())["collections"]
    assert dict((c["name"], c["version"]) for c in ee) == declared


def test_ansible_builder_makes_the_build_context_offline(tmp_path):
    shutil.copy(TOP / "execution-environment.yml", tmp_path)
    shutil.copytree(TOP / "ee", tmp_path / "ee", ignore=shutil.ignore_patterns("build"))
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "ee" / "build"),
                    str(TOP)], check=True, capture_output=True)
    done = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml",
                           "-c", str(tmp_path / "context")], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    build = tmp_path / "context" / "_build"
    version = yaml.safe_load((TOP / "galaxy.yml").read_text())["version"]
    assert (build / "collections" / ("bluemind-migration-%s.tar.gz" % version)).is_file()
    assert yaml.safe_load((build / "requirements.yml").read_text()) == yaml.safe_load(
        (TOP / "ee" / "requirements.yml").read_text())
    assert "openssh-client" in (build / "bindep.txt").read_text()
    steps = (tmp_path / "context" / "Dockerfile").read_text()
    # the galaxy stage installs the tarball where the final image takes its collections from
    galaxy_stage = steps.split("FROM base AS galaxy")[1].split("FROM base AS builder")[0]
    assert "collection install --offline -p /usr/share/ansible/collections /build/collections/bluemind-migration-" \
        in galaxy_stage
    assert "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" in steps.split("FROM base AS final")[1]
    assert "ansible-core>=2.19,<2.20" in steps
