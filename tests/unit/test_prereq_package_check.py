"""prereq fails before any change when the target lacks a BlueMind package (bm-*, plugins included)
of the origin, except those listed in prereq_packages_ignore. The task runs for real with ansible-playbook."""
from ansible_collections.bluemind.migration.tests.unit.role_task import run_role_task

TASK = "Check that the target has every BlueMind package of the origin"
ORIGIN = ["bm-core 4.9.3884-bullseye ii ", "bm-plugin-core-ldap-import 4.9.3884-bullseye ii ",
          "bm-plugin-old 4.9.1-bullseye rc "]  # rc: removed, its configuration left: not installed


def run_check(tmp_path, origin, target, ignore=()):
    return run_role_task(tmp_path, "roles/prereq/tasks/checks.yml", TASK, {
        "bluemind_origin": "bm-origin", "prereq_packages_ignore": list(ignore),
        "prereq_packages": {"results": [{"stdout_lines": origin}, {"stdout_lines": target}]}})


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
