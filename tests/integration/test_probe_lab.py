"""playbooks/probe.yml on the lab: every FIDELITY row confirmed (or not observable, with why), one point
changed by hand is named as differing, and the probe changes nothing, in check mode or not."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labpaths import LAB_INVENTORY as INVENTORY, TOP, VENV_BIN  # noqa: E402
from test_playbook_check import snapshot  # noqa: E402

# The lab runs BlueMind on both hosts: `bmctl stop` would be a change, so this row cannot be seen.
# seen only on a stopped host, on a write, or where a backup ran
NOT_OBSERVABLE_ON_A_RUNNING_LAB = {"bmctl-stop", "mynetworks-normalised", "backup-spool"}


@pytest.fixture(scope="module")
def plain_config(tmp_path_factory):
    """Not the checkout's ansible.cfg: its profiling callback would print into the JSON report."""
    config = tmp_path_factory.mktemp("probe") / "ansible.cfg"
    config.write_text("[defaults]\n")
    return str(config)


def run_probe(collections_path, config, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=config, ANSIBLE_COLLECTIONS_PATH=collections_path,
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_SHOW_CUSTOM_STATS="true",
               ANSIBLE_PIPELINING="true")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), str(TOP / "playbooks/probe.yml")]
                          + list(extra), capture_output=True, text=True, env=env, cwd=str(TOP), timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    (rows,) = report["global_custom_stats"]["probe"].values()
    tasks = report["plays"][1]["tasks"]
    table = next(t for t in tasks if t["task"]["name"].startswith("What the collection relies on"))
    (printed,) = [h["msg"] for h in table["hosts"].values()]
    changed = [t["task"]["name"] for play in report["plays"] for t in play["tasks"]
               if any(h.get("changed") for h in t["hosts"].values())]
    return dict((r["id"], r) for r in rows), printed, changed


def test_the_lab_confirms_every_row_and_the_probe_changes_nothing(lab, collections_path, plain_config):
    before = {h.role: snapshot(h) for h in (lab.origin, lab.target)}
    for extra in ([], ["--check"]):
        rows, printed, changed = run_probe(collections_path, plain_config, *extra)
        assert changed == []
        statuses = dict((i, r["status"]) for i, r in rows.items())
        wrong = dict((i, rows[i]["found"]) for i, s in statuses.items()
                     if s != ("not observable" if i in NOT_OBSERVABLE_ON_A_RUNNING_LAB else "confirmed"))
        assert wrong == {}, "\n".join(printed)
        assert "needs `bmctl stop`" in rows["bmctl-stop"]["found"]
        assert printed[-1] == "%d confirmed, 0 differ, %d not observable" % (
            len(rows) - len(NOT_OBSERVABLE_ON_A_RUNNING_LAB), len(NOT_OBSERVABLE_ON_A_RUNNING_LAB))
    assert {h.role: snapshot(h) for h in (lab.origin, lab.target)} == before


def _psql_bj(host, sql):
    return host.run("runuser -u postgres -- psql -X -At -d bj -c %s" % json.dumps(sql))


@pytest.fixture
def hstore_in_public(lab):
    _psql_bj(lab.origin, "ALTER EXTENSION hstore SET SCHEMA public")
    yield
    _psql_bj(lab.origin, "ALTER EXTENSION hstore SET SCHEMA pg_catalog")
    assert _psql_bj(lab.origin, "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'hstore'"
                    ).stdout.strip() == "pg_catalog"


def test_an_extension_moved_by_hand_is_named(lab, collections_path, plain_config, hstore_in_public):
    rows, printed = run_probe(collections_path, plain_config)[:2]
    assert rows["ext-pg-catalog"]["status"] == "differs"
    assert "origin bj: hstore in public" in rows["ext-pg-catalog"]["found"]
    assert "target bj: all four in pg_catalog" in rows["ext-pg-catalog"]["found"]
    differing = sorted(i for i, r in rows.items() if r["status"] == "differs")
    assert differing == ["ext-pg-catalog"], "\n".join(printed)
    assert any(line.startswith("1  | ext-pg-catalog") and "| differs " in line for line in printed)


@pytest.fixture
def target_without_a_plugin(lab):
    package = lab.origin.run("dpkg-query -W -f='${Package}\\n' 'bm-plugin-*' | head -n 1").stdout.strip()
    assert package, "the seed installs bm-plugin-* packages on the origin"
    version = lab.target.run("dpkg-query -W -f='${Version}' %s" % package).stdout.strip()
    lab.target.run("dpkg -r %s >/dev/null" % package)
    yield package
    lab.target.run("/opt/bmsim/bin/bm-sim-add-package %s %s >/dev/null" % (package, version.rsplit("-", 1)[0]))


def test_a_plugin_missing_on_the_target_is_named(lab, collections_path, plain_config, target_without_a_plugin):
    rows, printed = run_probe(collections_path, plain_config)[:2]
    assert rows["bm-packages"]["status"] == "differs", "\n".join(printed)
    assert "target lacks %s" % target_without_a_plugin in rows["bm-packages"]["found"]


def test_prereq_fails_before_any_change_when_the_target_lacks_a_plugin(lab, collections_path,
                                                                       target_without_a_plugin):
    before = {h.role: snapshot(h) for h in (lab.origin, lab.target)}
    env = dict(os.environ, ANSIBLE_CONFIG=str(TOP / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections_path)
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), str(TOP / "playbooks/migrate.yml"),
                           "--tags", "prereq"], capture_output=True, text=True, env=env, cwd=str(TOP), timeout=600,
                          check=False)
    assert proc.returncode != 0
    assert "lacks BlueMind packages that" in proc.stdout and target_without_a_plugin in proc.stdout, proc.stdout[-3000:]
    assert "Nothing was changed." in proc.stdout
    after = {h.role: snapshot(h) for h in (lab.origin, lab.target)}
    assert after == before
