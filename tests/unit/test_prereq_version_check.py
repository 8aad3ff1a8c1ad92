"""The prereq version check compares the API's softwareVersion (the same on every distribution),
and only when an API does not answer the upstream part of the bm-core package versions (built per
distribution: 4.9.3884-bullseye, 4.9.3884-bookworm). The task runs for real with ansible-playbook."""
import pytest

from ansible_collections.bluemind.migration.tests.unit.role_task import run_role_task

TASK = "Check the BlueMind versions and external-url"


def info(api, package, url="bluemind.lab.test"):
    return {"version": {"api": api, "package": package, "package_upstream": package.rsplit("-", 1)[0]},
            "external_url": url}


def run_check(tmp_path, origin, target):
    return run_role_task(tmp_path, "roles/prereq/tasks/checks.yml", TASK, {
        "bluemind_origin": "bm-origin", "prereq_origin_info": origin, "prereq_target_info": target})


def test_same_software_version_on_two_distributions_passes(tmp_path):
    result = run_check(tmp_path, info("4.9.3884", "4.9.3884-bullseye"), info("4.9.3884", "4.9.3884-bookworm"))
    assert not result.get("failed"), result


def test_different_software_versions_fail_and_say_what_was_compared(tmp_path):
    result = run_check(tmp_path, info("4.9.3884", "4.9.3884-bullseye"), info("4.9.4000", "4.9.4000-bookworm"))
    assert result["failed"] is True
    assert "runs BlueMind 4.9.3884" in result["msg"] and "runs 4.9.4000" in result["msg"]
    assert "softwareVersion from each admin API" in result["msg"]


def test_a_silent_api_falls_back_to_the_upstream_package_version_and_says_so(tmp_path):
    result = run_check(tmp_path, info("4.9.3884", "4.9.3884-bullseye"), info(None, "4.9.3884-bookworm"))
    assert not result.get("failed"), result
    assert result["msg"] == ("BlueMind 4.9.3884 on both hosts (the admin API does not answer on localhost, so "
                             "the upstream part of the bm-core package versions was compared "
                             "(4.9.3884-bullseye, 4.9.3884-bookworm))")


@pytest.mark.parametrize("origin_api", [None, "4.9.3884"])
def test_the_fallback_still_refuses_different_versions(tmp_path, origin_api):
    result = run_check(tmp_path, info(origin_api, "4.9.3884-bullseye"), info(None, "4.9.4000-bookworm"))
    assert result["failed"] is True and "runs 4.9.4000" in result["msg"]
    assert "the admin API does not answer on" in result["msg"]
