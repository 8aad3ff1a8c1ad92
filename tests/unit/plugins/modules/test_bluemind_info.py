import os
import pwd

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils.api import URLError
from ansible_collections.bluemind.migration.plugins.modules import bluemind_info

from ...conftest import assert_no_secret

BM_INI = '[global]\nexternal-url = mail.example.test\nexternal-protocol = https\ndb = bj\nuser = bj\npassword = "dbS3cret"\n'


@pytest.fixture
def host(tmp_path, commands, api):
    ini = tmp_path / "bm.ini"
    ini.write_text(BM_INI)
    tree = tmp_path / "spool"
    (tree / "user" / "a").mkdir(parents=True)
    (tree / "user" / "a" / "1.").write_bytes(b"x" * 1000)
    os.link(str(tree / "user" / "a" / "1."), str(tree / "user" / "a" / "2."))  # single-instance store
    (tree / "cyrus.squat").write_bytes(b"y" * 10)
    os.symlink("user", str(tree / "link"))
    commands.add(lambda a: a[0].endswith("dpkg-query"), (0, "4.9.3884-bookworm", ""))
    commands.add(lambda a: a[0].endswith("rpm"), (0, "4.9.3884", ""))
    commands.add(lambda a: a[0].endswith("psql"), (0, "15.8\0", ""))
    api.routes[("GET", "/system/installation/_infos")] = (200, {"softwareVersion": "4.9.3884", "releaseName": "x"})
    return dict(bm_ini=str(ini), trees=[str(tree), str(tmp_path / "absent" / "tree")])


def test_info_describes_versions_and_trees(run_module, host, commands):
    result = run_module(bluemind_info, host, check_mode=True)
    assert result["changed"] is False
    assert result["version"] == dict(package="4.9.3884-bookworm", package_upstream="4.9.3884", api="4.9.3884",
                                     api_error=None)
    assert (result["external_url"], result["external_protocol"]) == ("mail.example.test", "https")
    assert result["postgresql"] == dict(version="15.8", error=None)
    spool, absent = result["trees"]
    assert spool["exists"] is True
    assert (spool["files"], spool["directories"]) == (3, 3)  # hard-linked pair once, squat, symlink
    assert spool["bytes"] == 1000 + 10 + len("user")
    me = pwd.getpwuid(os.getuid())
    assert spool["owners"] == [dict(name=me.pw_name, id=me.pw_uid)]
    assert spool["filesystem"]["free_bytes"] > 0
    assert absent["exists"] is False and absent["files"] == 0 and absent["filesystem"]["mount"]
    psql = next(c for c in commands.calls if c["args"][0].endswith("psql"))
    assert psql["environ_update"]["PGPASSWORD"] == "dbS3cret" and "dbS3cret" not in psql["args"]
    assert_no_secret(result, "dbS3cret")


def test_info_reports_an_unreachable_api_and_database(run_module, host, api, commands):
    def refuse(_request):
        raise URLError("Connection refused")
    api.routes[("GET", "/system/installation/_infos")] = refuse
    commands.rules.insert(0, (lambda a: a[0].endswith("psql"), (2, "", "connection refused\n")))
    result = run_module(bluemind_info, host)
    assert not result.get("failed")
    assert result["version"]["api"] is None and "cannot reach the BlueMind API" in result["version"]["api_error"]
    assert result["postgresql"]["version"] is None and "connection refused" in result["postgresql"]["error"]


def test_info_without_bm_core_package(run_module, host, commands):
    commands.rules.insert(0, (lambda a: a[0].endswith("dpkg-query"), (1, "", "no packages found matching bm-core")))
    version = run_module(bluemind_info, host)["version"]
    assert version["package"] is None and version["package_upstream"] is None


@pytest.mark.parametrize("package, upstream", [
    ("4.9.3884-bullseye", "4.9.3884"), ("1:5.7.3268-1~bookworm", "5.7.3268"), ("4.9.3884", "4.9.3884")])
def test_upstream_version_drops_epoch_and_revision(package, upstream):
    assert bluemind_info.upstream_version(package) == upstream


def test_info_with_credentials_asks_the_authenticated_version(run_module, host, api):
    api.routes[("GET", "/system/installation/version")] = (200, {"softwareVersion": "5.7.3268"})
    result = run_module(bluemind_info, dict(host, api_token="t0ken-value"))
    assert result["version"]["api"] == "5.7.3268" and api.calls("GET", "/system/installation/_infos") == []
    assert api.calls("GET", "/system/installation/version")[0]["headers"]["X-BM-ApiKey"] == "t0ken-value"
    assert_no_secret(result, "t0ken-value")
