"""After a rollback from the cold window: the origin serves, with everything it had; the target is stopped."""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import TREES, host, table_counts, tree_listing  # noqa: E402

ORIGIN, TARGET = host("mol-origin"), host("mol-target")


def test_origin_serves_again():
    assert ORIGIN.check_output("bmctl status | grep -vc ' is running.$' || true") == "0"
    assert ORIGIN.service("postfix").is_running and ORIGIN.service("postfix").is_enabled


def test_target_is_stopped():
    assert "is running." not in TARGET.run("bmctl status").stdout  # exits 1: bm-nginx stays up (FIDELITY row 7)
    assert not TARGET.service("postfix").is_running


def test_ssh_trust_removed():
    assert "bluemind-migration" not in ORIGIN.file("/root/.ssh/authorized_keys").content_string
    assert not TARGET.file("/root/.ssh/bluemind_migration_ed25519").exists


def test_nothing_lost_on_the_origin():
    """The origin holds, row for row, what it had before the run, and the files the cold window copied."""
    before = json.loads(ORIGIN.file("/root/bmmol-rows-before.json").content_string)
    assert {db: table_counts(ORIGIN, db) for db in ("bj", "bj-data")} == before
    for tree in TREES:
        assert tree_listing(ORIGIN, tree) == tree_listing(TARGET, tree)


def test_origin_delivers_mail_after_the_rollback():
    before = int(table_counts(ORIGIN, "bj-data")["public.t_mailbox_record"])
    ORIGIN.check_output("python3 -c %s", "import smtplib; s = smtplib.SMTP('127.0.0.1', 25); "
                        "s.sendmail('probe@lab.test', ['admin@lab.test'], 'Subject: after rollback\\n\\nhello'); s.quit()")
    for _attempt in range(30):
        if int(table_counts(ORIGIN, "bj-data")["public.t_mailbox_record"]) == before + 1:
            return
        time.sleep(1)
    raise AssertionError("the origin did not deliver a message after the rollback")


def test_state_records_the_rollback_and_forgets_the_window():
    state = json.loads(TARGET.file("/var/lib/bluemind-migration/state.json").content_string)
    assert "rollback" in state and "cold_sync" not in state and not state.get("complete")
