"""A cutover that fails after the target went live, then the operator's reruns (issue 11).

The window runs with a wrong admin password: the target starts serving, then the firewall step
fails. A message reaches the live target by SMTP. The operator reruns prerequisites + hot sync, then
the whole window. Nothing may then stop the target, pull into it or restore over it: the message
stays, and the reruns only finish the cutover (admin actions, smoke check, report).
"""
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import ansible_playbook, host, table_counts  # noqa: E402

ORIGIN, TARGET = host("mol-origin"), host("mol-target")
WINDOW = ("-e", "bluemind_confirm_downtime=true", "-e", "bluemind_confirm_cutover=true")
HEADER = "X-Failed-Cutover: received-live"
STATE = "/var/lib/bluemind-migration/state.json"
# Tasks that stop the target, trust the origin again, pull from it or restore its databases.
MOVES_DATA = ("Pull the trees from the origin", "Transfer and verify the databases",
              "Stop BlueMind, then postfix, on the target", "Stop BlueMind, then postfix, on the origin",
              "Authorize the migration key on the origin, from the target's address only")


def received_on_target():
    """Spool files holding the message that only the live target received."""
    out = TARGET.check_output("grep -rlF %s /var/spool/cyrus/data || true", HEADER)
    return out.split()


def invocations():
    """systemd's id of each run of the target's services: a stop and start gives a new one."""
    return TARGET.check_output("systemctl show -p InvocationID --value bm-core bm-lmtpd postfix@-").split()


def state():
    return json.loads(TARGET.file(STATE).content_string)


@pytest.fixture(scope="module")
def sequence():
    """Runs the operator's sequence once; each test then checks one thing of what it left."""
    seen = {"window": ansible_playbook("migrate.yml", "--tags", "cold_sync,db_migrate,config_copy,cutover",
                                       *WINDOW, "-e", "bluemind_admin_password=not-the-password")}
    seen["state_after_failure"] = state()
    TARGET.check_output(
        "python3 -c %s",
        "import smtplib; s = smtplib.SMTP('127.0.0.1', 25); s.sendmail('someone@example.org', ['admin@lab.test'], "
        f"'Subject: after the failed cutover\\n{HEADER}\\n\\nonly the live target has it\\n'); s.quit()")
    for _attempt in range(60):
        if received_on_target():
            break
        time.sleep(1)
    seen["received_before"] = received_on_target()
    seen["records_before"] = int(table_counts(TARGET, "bj-data")["public.t_mailbox_record"])
    seen["invocations_before"] = invocations()
    seen["origin_clock_before"] = int(ORIGIN.check_output("date +%s"))
    seen["rollback"] = ansible_playbook("rollback.yml")
    seen["rerun_hot"] = ansible_playbook("migrate.yml", "--tags", "prereq,hot_sync")
    seen["rerun_window"] = ansible_playbook("migrate.yml", *WINDOW)
    return seen


def test_the_window_failed_after_the_target_went_live(sequence):
    proc, before = sequence["window"], sequence["state_after_failure"]
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "Regenerate the firewall rules" in proc.stdout, proc.stdout[-3000:]
    assert "live" in before["cutover"] and "serving" in before["cutover"] and not before.get("complete")


def test_the_live_target_received_the_message(sequence):
    assert len(sequence["received_before"]) == 1


def test_the_reruns_succeed_and_say_why_they_move_nothing(sequence):
    for run in ("rerun_hot", "rerun_window"):
        proc = sequence[run]
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "its cutover did not finish: this run finishes it" in sequence["rerun_hot"].stdout
    assert "the migration of mol-target is complete" in sequence["rerun_window"].stdout


def test_the_message_received_while_live_is_still_there(sequence):
    assert received_on_target() == sequence["received_before"]
    assert int(table_counts(TARGET, "bj-data")["public.t_mailbox_record"]) >= sequence["records_before"]


def test_nothing_stopped_the_live_target(sequence):
    assert invocations() == sequence["invocations_before"]


def test_nothing_pulled_from_the_origin_after_the_target_went_live(sequence):
    """The pulls log in to the origin over SSH (Ansible itself reaches the containers through Docker)."""
    since = sequence["origin_clock_before"]
    # the probe sees the pulls: the hot sync and the failed window logged in before
    assert int(ORIGIN.check_output("journalctl -q --no-pager _COMM=sshd | grep -c Accepted || true")) > 0
    logins = ORIGIN.check_output("journalctl -q --no-pager --since @%s _COMM=sshd | grep -c Accepted || true", str(since))
    assert logins == "0"
    assert "bluemind-migration" not in ORIGIN.check_output("cat /root/.ssh/authorized_keys 2>/dev/null || true")
    for run in ("rollback", "rerun_hot", "rerun_window"):
        for task in MOVES_DATA:
            assert f" : {task}]" not in sequence[run].stdout, (run, task)


def test_the_reruns_finished_the_cutover(sequence):
    done = state()
    assert done["complete"] is True
    assert done["cutover"]["serving"] == sequence["state_after_failure"]["cutover"]["serving"]
    assert done["cutover"]["admin"]["firewall"], done["cutover"]
    assert done["cutover"]["smoke"]["smtp"].startswith("delivered to ")
    # The message and the smoke check came in live; the origin stays down.
    assert "is running." not in ORIGIN.check_output("bmctl status || true")


def test_a_rollback_of_the_live_target_is_refused(sequence):
    proc = sequence["rollback"]
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "has been live since" in said and "Nothing was changed" in said, said[-3000:]


def test_a_rollback_after_the_cutover_finished_changes_nothing(sequence):
    proc = ansible_playbook("rollback.yml")
    assert proc.returncode == 0 and "is complete" in proc.stdout, proc.stdout[-3000:]
    assert invocations() == sequence["invocations_before"]
    assert received_on_target() == sequence["received_before"]
