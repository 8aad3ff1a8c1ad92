"""The roles' plan for the origin's major (roles/bluemind/tasks/plan.yml) and prereq's check of the
major's trees, run for real with ansible-playbook: the lists come from module_utils/profile.py."""
import pytest

from ansible_collections.bluemind.migration.tests.unit.role_task import TOP, run_role_task

PLAN = "roles/bluemind/tasks/plan.yml"


@pytest.fixture(autouse=True)
def collection(monkeypatch):
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(TOP / ".venv" / "collections"))
    if not (TOP / ".venv" / "collections" / "ansible_collections" / "bluemind" / "migration").exists():
        pytest.skip("make venv links the collection into .venv/collections")


def plan(tmp_path, **variables):
    base = {"bluemind_major": "", "bluemind_trees": [], "ansible_facts": {"bluemind_state": {}},
            "__bluemind_found_trees": {"stdout_lines": ["/var/spool/cyrus", "/var/spool/bm-elasticsearch",
                                                        "/var/spool/bm-hollowed", "/var/lib/cyrus"]}}
    result = run_role_task(tmp_path, PLAN, "Plan for the origin's major", dict(base, **variables))
    assert not result.get("failed"), result.get("msg")
    return result["ansible_facts"]["bluemind_plan"]


def test_a_5x_origin_pulls_its_own_trees_only(tmp_path):
    found = plan(tmp_path, bluemind_plan_version="5.7.3268")
    assert found["major"] == 5
    assert found["pull_trees"] == ["/var/spool/cyrus", "/var/spool/bm-elasticsearch", "/var/spool/bm-hollowed"]
    assert "/var/spool/bm-hsm" in found["absent_trees"] and found["missing_trees"] == []


def test_the_state_version_and_the_override(tmp_path):
    state = {"bluemind_state": {"version": "4.9.3884"}}
    assert plan(tmp_path, ansible_facts=state)["major"] == 4
    assert plan(tmp_path, ansible_facts=state, bluemind_major="5")["major"] == 5


def test_the_operators_trees_win(tmp_path):
    found = plan(tmp_path, bluemind_plan_version="5.7.3268", bluemind_trees=["/srv/mail"])
    assert found["pull_trees"] == ["/srv/mail"]


def test_prereq_names_a_required_tree_the_origin_lacks(tmp_path):
    from ansible_collections.bluemind.migration.plugins.filter.bluemind_profile import bluemind_profile
    missing = bluemind_profile("5.7.3268", existing=["/var/spool/bm-elasticsearch"])
    result = run_role_task(tmp_path, "roles/prereq/tasks/checks.yml", "Check that the origin has the data trees of its major",
                           {"bluemind_origin": "bm-origin", "bluemind_plan": missing})
    assert result.get("failed") is True
    assert "bm-origin runs BlueMind 5.x but lacks /var/spool/cyrus" in result["msg"]
    assert result["msg"].endswith("Nothing was changed.")
