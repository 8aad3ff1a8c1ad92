"""Each bad input fails with a message that says what to do, and nothing changes on either host."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import ansible_playbook, host, snapshot  # noqa: E402

ORIGIN, TARGET = host("mol-origin"), host("mol-target")


@pytest.fixture
def unchanged():
    """Both hosts are as they were after the failed run."""
    before = {h: snapshot(h) for h in (ORIGIN, TARGET)}
    yield
    for h in (ORIGIN, TARGET):
        assert snapshot(h) == before[h]


@pytest.fixture
def target_version():
    yield lambda v: TARGET.run_test("bm-sim-set-version %s", v)
    TARGET.check_output("bm-sim-set-version 4.9.3884")


def test_version_mismatch(target_version, unchanged):
    target_version("4.9.4000")
    proc = ansible_playbook("migrate.yml")
    assert proc.returncode != 0
    assert "runs BlueMind 4.9.3884" in proc.stdout and "4.9.4000" in proc.stdout
    assert "install on the target the same BlueMind version" in proc.stdout


@pytest.fixture
def target_external_url():
    TARGET.check_output("cp -p /etc/bm/bm.ini /root/bm.ini.keep && sed -i 's/^external-url = .*/external-url = other.lab.test/' /etc/bm/bm.ini")
    yield
    TARGET.check_output("mv /root/bm.ini.keep /etc/bm/bm.ini")


def test_external_url_mismatch(target_external_url, unchanged):
    proc = ansible_playbook("migrate.yml")
    assert proc.returncode != 0
    assert "external-url bluemind.lab.test" in proc.stdout and "other.lab.test" in proc.stdout


def test_wrong_database_password(unchanged):
    proc = ansible_playbook("migrate.yml", "-e", "bluemind_db_password=not-the-password")
    assert proc.returncode != 0
    assert "PostgreSQL on mol-origin refused user bj" in proc.stdout
    assert "not-the-password" not in proc.stdout + proc.stderr


def test_wrong_admin_password(unchanged):
    proc = ansible_playbook("migrate.yml", "-e", "bluemind_admin_password=not-the-password")
    assert proc.returncode != 0
    assert "login refused for admin0@global.virt" in proc.stdout
    assert "not-the-password" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("tags, confirmation", [("cold_sync", "bluemind_confirm_downtime"),
                                                ("cutover", "bluemind_confirm_cutover")])
def test_missing_confirmation(tags, confirmation, unchanged):
    proc = ansible_playbook("migrate.yml", "--tags", tags)
    assert proc.returncode != 0
    assert f"Rerun with -e {confirmation}=true" in proc.stdout


def test_unknown_origin(unchanged):
    proc = ansible_playbook("migrate.yml", "-e", "bluemind_origin_host=nowhere")
    assert proc.returncode != 0
    assert "set bluemind_origin_host to one of the `origin` group (mol-origin)" in proc.stdout
