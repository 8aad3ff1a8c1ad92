"""module_utils/profile.py: what each BlueMind major moves, copies, calls and checks."""
import subprocess

import pytest
import yaml

from ansible_collections.bluemind.migration.plugins.module_utils import profile as bmp
from ansible.errors import AnsibleFilterError
from ansible_collections.bluemind.migration.plugins.filter.bluemind_profile import bluemind_profile

from ...test_roles import TOP

# The 4.x lists as the roles' defaults held them before the profile existed (main at 37abb4c).
MAIN = "37abb4c"
V4_TREES = ["/var/spool/cyrus", "/var/lib/cyrus", "/var/spool/bm-hsm", "/var/spool/sieve",
            "/var/spool/bm-elasticsearch", "/var/spool/bm-docs", "/var/spool/bm-filehosting", "/var/spool/bm-hollowed"]
V4_PATHS = ["etc/bm/", "etc/bm-hps/", "etc/bm-webmail/", "etc/ssl/certs/bm_cert.pem", "var/lib/bm-ca/",
            "usr/share/bm-elasticsearch/config/elasticsearch.yml", "etc/postfix/main.cf", "etc/postfix/master.cf"]
V4_GLOBS = ["/etc/ssl/certs/bm_cert-*.pem", "/etc/nginx/bm-local.d", "/etc/imapd*", "/etc/cyrus*", "/etc/postfix/*-flat"]
CYRUS = ("/var/lib/cyrus", "/var/spool/sieve")


def old_default(path, key):
    try:
        text = subprocess.run(["git", "-C", str(TOP), "show", "%s:%s" % (MAIN, path)], capture_output=True,
                              text=True, check=True).stdout
    except (subprocess.CalledProcessError, OSError):
        pytest.skip("git history not available")
    return yaml.safe_load(text)[key]


def test_the_4x_lists_are_the_ones_the_roles_had():
    plan = bmp.profile("4.9.3884")
    assert plan["trees"] == V4_TREES and plan["config_paths"] == V4_PATHS and plan["config_globs"] == V4_GLOBS
    assert V4_TREES == old_default("roles/bluemind/defaults/main.yml", "bluemind_trees")
    assert V4_PATHS == old_default("roles/config_copy/defaults/main.yml", "config_copy_paths")
    assert V4_GLOBS == old_default("roles/config_copy/defaults/main.yml", "config_copy_globs")


def test_5x_has_no_cyrus_and_starts_with_the_archive_tier():
    plan = bmp.profile("5.7.3268-1")
    assert plan["major"] == 5 and plan["trees"][0] == "/var/spool/bm-hsm"  # as the 5.x vendor procedure
    assert not set(CYRUS) & set(plan["trees"]) and set(CYRUS) <= set(plan["left_behind"])
    assert "/var/spool/bm-mail" not in plan["trees"] and "/var/spool/bm-mail" in plan["left_behind"]
    assert {"/var/spool/cyrus", "/var/spool/bm-hollowed", "/var/spool/bm-elasticsearch"} <= set(plan["trees"])
    assert "etc/bm-hps/" not in plan["config_paths"] and "etc/bm/" in plan["config_paths"]
    assert not [g for g in plan["config_globs"] if "imapd" in g or "cyrus" in g]
    assert "/etc/bm-keycloak" in plan["config_globs"]


def test_admin_calls_and_checks_by_major():
    four, five = bmp.profile("4.9"), bmp.profile("5.1")
    assert four["admin"]["firewall"] == dict(root="/api", path="/system/security/_updatefirewallrules", internal=False)
    assert five["admin"]["firewall"] == dict(root="/internal-api", path="/system/firewall/_updatefirewallrules",
                                             internal=True)
    assert four["admin"]["mail_repair"] == five["admin"]["mail_repair"]  # same interface on both
    assert four["admin"]["sysconf"] == five["admin"]["sysconf"]
    assert (four["admin"]["keycloak_repair"], five["admin"]["keycloak_repair"]) == (False, True)
    assert four["checks"]["delivery"] == five["checks"]["delivery"] == "bj-data"


@pytest.mark.parametrize("version, override, major", [
    ("4.9.3884", None, 4), ("5.7.3268-1", None, 5), ("4.9.3884", "5", 5), ("4.9.3884", 5, 5),
    (None, "5.7", 5), ("", "4", 4), ("5.7.3268", "", 5),
])
def test_the_override_wins_over_the_version(version, override, major):
    assert bmp.resolve_major(version, override) == major


@pytest.mark.parametrize("version, override, words", [
    (None, None, "set bluemind_major to 4 or 5"),
    ("6.0.1", None, "is not supported"),
    ("4.9", "five", "cannot read a BlueMind major from bluemind_major 'five'"),
    ("abc", None, "cannot read a BlueMind major from the origin's version 'abc'"),
])
def test_an_unknown_major_says_what_to_set(version, override, words):
    with pytest.raises(bmp.ProfileError, match=words):
        bmp.resolve_major(version, override)


def test_only_existing_trees_are_pulled_and_missing_required_ones_are_named():
    plan = bmp.profile("5.7")
    found = ["/var/spool/cyrus/", "/var/spool/bm-elasticsearch", "/var/lib/cyrus"]  # legacy Cyrus left on an upgraded host
    assert bmp.trees_to_pull(plan, found) == ["/var/spool/cyrus", "/var/spool/bm-elasticsearch"]
    assert bmp.missing_required(plan, found) == []
    assert bmp.missing_required(plan, ["/var/spool/bm-hsm"]) == ["/var/spool/cyrus", "/var/spool/bm-elasticsearch"]


def test_the_operators_trees_win_as_given():
    plan = bmp.profile("5.7")
    assert bmp.trees_to_pull(plan, [], ["/srv/mail"]) == ["/srv/mail"]
    assert bmp.missing_required(plan, [], ["/srv/mail"]) == []


def test_config_lists_and_missing_required_files():
    plan = bmp.profile("4.9")
    assert bmp.config_lists(plan) == dict(paths=V4_PATHS, globs=V4_GLOBS)
    assert bmp.config_lists(plan, ["etc/bm/"], None) == dict(paths=["etc/bm/"], globs=V4_GLOBS)
    found = [p for p in V4_PATHS if p != "etc/bm-hps/"]
    assert bmp.missing_config(plan, [p.rstrip("/") for p in found]) == ["etc/bm-hps/"]
    assert bmp.missing_config(bmp.profile("5.0"), [p.rstrip("/") for p in found]) == []


def test_candidate_trees_cover_both_majors_once():
    trees = bmp.candidate_trees()
    assert len(trees) == len(set(trees)) and set(V4_TREES) | set(bmp.profile("5")["trees"]) == set(trees)


def test_the_filter_resolves_the_plan_and_fails_with_the_message():
    plan = bluemind_profile("5.7.3268", existing=["/var/spool/cyrus", "/var/spool/bm-hollowed"])
    assert plan["pull_trees"] == ["/var/spool/cyrus", "/var/spool/bm-hollowed"]
    assert plan["missing_trees"] == ["/var/spool/bm-elasticsearch"]
    assert "/var/spool/bm-hsm" in plan["absent_trees"]
    assert plan["copy_paths"] == plan["config_paths"] and plan["missing_config"] == []
    given = bluemind_profile("4.9", major="5", trees=["/srv/x"], config_globs=["/etc/x*"],
                             existing_config=["etc/bm"])
    assert given["major"] == 5 and given["pull_trees"] == ["/srv/x"] and given["absent_trees"] == []
    assert given["copy_globs"] == ["/etc/x*"] and "etc/ssl/certs/bm_cert.pem" in given["missing_config"]
    with pytest.raises(AnsibleFilterError, match="bluemind_major"):
        bluemind_profile(None)
