"""Each bad input fails with a message that says what to do, and nothing changes on either host."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import ansible_playbook, assert_failed_with, host, snapshot  # noqa: E402

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
    assert_failed_with(ansible_playbook("migrate.yml"), "runs BlueMind 4.9.3884", "runs 4.9.4000",
                       "install on the target the same BlueMind version")


@pytest.fixture
def target_external_url():
    TARGET.check_output("cp -p /etc/bm/bm.ini /root/bm.ini.keep && sed -i 's/^external-url = .*/external-url = other.lab.test/' /etc/bm/bm.ini")
    yield
    TARGET.check_output("mv /root/bm.ini.keep /etc/bm/bm.ini")


def test_external_url_mismatch(target_external_url, unchanged):
    assert_failed_with(ansible_playbook("migrate.yml"), "external-url bluemind.lab.test",
                       "external-url other.lab.test")


def test_wrong_database_password(unchanged):
    proc = ansible_playbook("migrate.yml", "-e", "bluemind_db_password=not-the-password")
    assert_failed_with(proc, "PostgreSQL on mol-origin refused user bj")
    assert "not-the-password" not in proc.stdout + proc.stderr


def test_wrong_admin_password(unchanged):
    proc = ansible_playbook("migrate.yml", "-e", "bluemind_admin_password=not-the-password")
    assert_failed_with(proc, "login refused for admin0@global.virt")
    assert "not-the-password" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("tags, confirmation", [("cold_sync", "bluemind_confirm_downtime"),
                                                ("cutover", "bluemind_confirm_cutover")])
def test_missing_confirmation(tags, confirmation, unchanged):
    assert_failed_with(ansible_playbook("migrate.yml", "--tags", tags), f"Rerun with -e {confirmation}=true")


def test_unknown_origin(unchanged):
    assert_failed_with(ansible_playbook("migrate.yml", "-e", "bluemind_origin_host=nowhere"),
                       "set bluemind_origin_host to one of the `origin` group (mol-origin)")
