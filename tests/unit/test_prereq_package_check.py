"""prereq fails before any change when the target lacks a BlueMind package (bm-*, plugins included)
of the origin, except those listed in prereq_packages_ignore. The task runs for real with ansible-playbook."""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[2]
TASK = "Check that the target has every BlueMind package of the origin"
ORIGIN = ["bm-core 4.9.3884-bullseye ii ", "bm-plugin-core-ldap-import 4.9.3884-bullseye ii ",
          "bm-plugin-old 4.9.1-bullseye rc "]  # rc: removed, its configuration left: not installed


def run_check(tmp_path, origin, target, ignore=()):
    tasks = yaml.safe_load((TOP / "roles/prereq/tasks/checks.yml").read_text())
    task = next(t for t in tasks if t["name"] == TASK)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task],
             "vars": {"bluemind_origin": "bm-origin", "prereq_packages_ignore": list(ignore),
                      "prereq_packages": {"results": [{"stdout_lines": origin}, {"stdout_lines": target}]}}}]
    path = tmp_path / "play.json"
    path.write_text(json.dumps(play))
    config = tmp_path / "ansible.cfg"  # not the checkout's: its profiling callback would print
    config.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(config))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           str(path)], capture_output=True, text=True, env=env, timeout=120, check=False)
    try:
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("ansible-playbook gave no result (exit %d): %s %s" % (
            proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))


def test_a_plugin_the_target_lacks_fails_naming_it(tmp_path):
    result = run_check(tmp_path, ORIGIN, ["bm-core 4.9.3884-bookworm ii "])
    assert result.get("failed") is True
    assert "localhost lacks BlueMind packages that bm-origin has: bm-plugin-core-ldap-import." in result["msg"]
    assert "bm-plugin-old" not in result["msg"] and result["msg"].endswith("Nothing was changed.")


def test_same_packages_other_builds_pass(tmp_path):
    target = [line.replace("bullseye", "bookworm") for line in ORIGIN[:2]] + ["bm-extra 1-bookworm ii "]
    assert not run_check(tmp_path, ORIGIN, target).get("failed")


def test_an_ignored_package_may_be_missing(tmp_path):
    result = run_check(tmp_path, ORIGIN, ["bm-core 4.9.3884-bookworm ii "], ignore=["bm-plugin-core-ldap-import"])
    assert not result.get("failed")
    assert run_check(tmp_path, ORIGIN, ["bm-core 4.9.3884-bookworm ii "], ignore=["bm-other"]).get("failed") is True
