"""The database passwords come from each side's bm.ini, read by the modules' own parser (the filter
bm_ini_global on module_utils/bmini.py), unless the operator gives one. The task runs for real."""
import base64

from ansible_collections.bluemind.migration.plugins.filter.bm_ini_global import bm_ini_global
from ansible_collections.bluemind.migration.tests.unit.role_task import run_role_task

TASK = "Keep the database passwords"
ORIGIN_INI = '[global]\nhost = 10.0.0.1\npassword = "s3cr;et"\nexternal-url = mail.example.com\n'
# a target whose [global] comes after another section, the key spaced differently, unquoted
TARGET_INI = '[other]\npassword = not-this-one\n\n[global]\n  password=target-pw  \nhost=10.0.0.2\n'


def slurped(*texts):
    return {"results": [{"content": base64.b64encode(text.encode()).decode()} for text in texts]}


def passwords(tmp_path, **variables):
    result = run_role_task(tmp_path, "roles/bluemind/tasks/db_passwords.yml", TASK, dict(
        {"bluemind_db_password": "", "bluemind_no_log": False}, **variables))
    assert not result.get("failed"), result
    facts = result["ansible_facts"]
    return facts["bluemind_origin_db_password"], facts["bluemind_target_db_password"]


def test_each_side_s_password_is_read_from_the_global_section_of_its_bm_ini(tmp_path):
    assert passwords(tmp_path, bluemind_bm_ini=slurped(ORIGIN_INI, TARGET_INI)) == ("s3cr;et", "target-pw")


def test_the_operator_s_password_wins_over_bm_ini(tmp_path):
    assert passwords(tmp_path, bluemind_db_password="given", bluemind_bm_ini={"results": [{"skipped": True}] * 2}) == (
        "given", "given")


def test_a_bm_ini_without_a_global_password_gives_an_empty_one():
    assert bm_ini_global("[global]\nhost = 1.2.3.4\n").get("password", "") == ""
    assert bm_ini_global("not an ini file [") == {} and bm_ini_global(None) == {}
