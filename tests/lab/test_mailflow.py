"""Mail flow in the origin: SMTP (real postfix) -> LMTP (bm-lmtpd) -> spool + bj-data, single
instance store; unknown recipients rejected; user activity (flags in place, expunge); mail load."""
import json
import smtplib
import time
import uuid

import pytest

pytestmark = pytest.mark.bluemind(4, reason='Cyrus spool, hard links and cyrus.index')

POLL_SECONDS = 30


def psql(host, db, sql):
    out = host.run("PGPASSWORD=bj psql -X -h 127.0.0.1 -U bj -d %s -tA -F ' ' -v ON_ERROR_STOP=1 -c \"%s\""
                   % (db, sql.replace('"', '\\"')))
    return out.stdout.strip()


def poll(check, what):
    """Call `check` until it returns something true, at most POLL_SECONDS."""
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail("after %ds: %s" % (POLL_SECONDS, what))
        time.sleep(0.5)


def in_python(host, code):
    """Run Python in the host with the simulator importable; returns its JSON output."""
    out = host.run("cd /opt/bmsim && python3 - <<'EOF'\n%s\nEOF" % code)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def users(lab):
    """Two users of lab.test (uid, domain, login) on the origin, whatever the seed scale."""
    rows = psql(lab.origin, "bj", "SELECT uid, domain_uid, login FROM t_directory_entry WHERE "
                                  "domain_uid = 'lab.test' AND login <> 'admin' ORDER BY login LIMIT 2")
    found = [line.split() for line in rows.splitlines()]
    if len(found) < 2:
        pytest.fail("the origin has fewer than two users in lab.test: seed it (make seed)")
    return found


def test_smtp_to_two_users_is_one_inode_in_both_mailboxes(lab, users):
    token = uuid.uuid4().hex
    to = ["%s@%s" % (login, domain) for _uid, domain, login in users]
    body = ("From: tester@example.net\r\nTo: %s\r\nSubject: mailflow %s\r\n"
            "Message-ID: <%s@tests.lab>\r\n\r\nsingle instance store\r\n" % (", ".join(to), token, token))
    with smtplib.SMTP(lab.origin.ip, 25, timeout=30) as smtp:
        assert smtp.sendmail("tester@example.net", to, body.encode()) == {}

    def rows():
        out = psql(lab.origin, "bj-data", "SELECT r.mailbox_uid, r.imap_uid, b.guid FROM t_mailbox_record r "
                   "JOIN t_message_body b ON b.guid = r.message_body_guid "
                   "WHERE b.subject = 'mailflow %s' ORDER BY r.mailbox_uid" % token)
        found = [line.split() for line in out.splitlines()]
        return found if len(found) == 2 else None

    records = poll(rows, "the message to %s did not reach bj-data" % to)
    assert {r[0] for r in records} == {u[0] for u in users}
    assert len({r[2] for r in records}) == 1  # one t_message_body row
    paths = []
    for mailbox_uid, imap_uid, _guid in records:
        domain, login = next((d, name) for u, d, name in users if u == mailbox_uid)
        paths.append("/var/spool/cyrus/data/%s/%s/%s." % (domain, login.replace(".", "^"), imap_uid))
    stats = lab.origin.run("stat -c '%%i %%h %%U:%%G %%a' %s" % " ".join("'%s'" % p for p in paths)).stdout.split("\n")
    inode_a, inode_b = (s.split() for s in stats[:2])
    assert inode_a[0] == inode_b[0], "not one inode: %s" % stats
    assert int(inode_a[1]) >= 2 and inode_a[2:] == ["cyrus:mail", "600"]
    content = lab.origin.run("cat '%s'" % paths[0]).stdout
    assert content.startswith("Return-Path: <tester@example.net>") and token in content
    # each mailbox's cyrus.index ends with the record of the new uid, same guid
    indexed = in_python(lab.origin, "import json\nfrom bmsim import spool\nout = {}\n" + "".join(
        "h, r = spool.read_index(spool.index_path(%r, %r))\nout[%r] = [h.last_uid, r[-1].uid, r[-1].guid.hex()]\n"
        % (d, l, u) for u, d, l in users) + "print(json.dumps(out))")
    for mailbox_uid, imap_uid, guid in records:
        assert indexed[mailbox_uid] == [int(imap_uid), int(imap_uid), guid]
    log = lab.origin.run("grep -F '%s' /var/log/bm-sim/lmtp.jsonl" % records[0][2]).stdout
    assert '"event": "delivered"' in log


def test_unknown_recipient_rejected(lab, users):
    unknown = "nobody-%s@lab.test" % uuid.uuid4().hex[:8]
    known = "%s@%s" % (users[0][2], users[0][1])
    with smtplib.SMTP(lab.origin.ip, 25, timeout=30) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("tester@example.net", [unknown], b"Subject: unknown\r\n\r\nx\r\n")
    assert refused.value.recipients[unknown][0] == 550
    # bm-lmtpd itself: 550 for the unknown recipient, 250 for the known one in the same transaction
    out = in_python(lab.origin, """
import json, smtplib
with smtplib.LMTP("127.0.0.1", 2400) as lmtp:
    lmtp.ehlo_or_helo_if_needed()
    lmtp.mail("tester@example.net")
    codes = [lmtp.rcpt(%r)[0], lmtp.rcpt(%r)[0]]
    lmtp.rset()
print(json.dumps(codes))""" % (unknown, known))
    assert out == [550, 250]
    assert unknown in lab.origin.run("grep -F '%s' /var/log/bm-sim/lmtp.jsonl" % unknown).stdout


def test_activity_flags_rewrite_index_in_place(lab):
    summary = json.loads(lab.origin.run("bm-sim activity --flags 5").stdout.strip().splitlines()[-1])
    assert summary["flags"] == 5 and summary["deleted"] == 0
    for change in summary["changed"]:
        before, after = change["before"], change["after"]
        assert after["size"] == before["size"], change["path"]
        assert after["inode"] == before["inode"], change["path"]
        assert after["mtime_ns"] != before["mtime_ns"], change["path"]
    for message in summary["messages"]:
        flags = psql(lab.origin, "bj-data", "SELECT system_flags FROM t_mailbox_record WHERE "
                     "mailbox_uid = '%s' AND imap_uid = %d" % (message["mailbox"], message["uid"]))
        assert int(flags) == message["flags"][1]


def test_activity_delete_expunges(lab):
    summary = json.loads(lab.origin.run("bm-sim activity --delete 3").stdout.strip().splitlines()[-1])
    assert summary["deleted"] == 3
    assert lab.origin.run("ls %s 2>/dev/null; true" % " ".join("'%s'" % p for p in summary["removed"])).stdout == ""
    for rewrite in summary["rewritten"]:
        assert rewrite["after"]["size"] < rewrite["before"]["size"]
        assert rewrite["after"]["inode"] != rewrite["before"]["inode"]  # renamed over, as Cyrus does


def test_load_sends_to_users(lab):
    out = lab.origin.run("bm-sim load --count 3 --rate 10", timeout=60).stdout.strip().splitlines()[-1]
    summary = json.loads(out)
    assert summary["sent"] == 3 and summary["failed"] == 0
    poll(lambda: int(psql(lab.origin, "bj-data", "SELECT count(DISTINCT guid) FROM t_message_body "
                          "WHERE subject LIKE 'load %s %%'" % summary["run"])) == 3,
         "the 3 messages of load run %s did not all arrive" % summary["run"])


def test_activity_until_stopped_changes_flags_until_bmctl_stop_and_ends_its_change(lab):
    """bm-sim-activity (part of bluemind.target) keeps changing flags until `bmctl stop`, which waits for
    it: once the stop returns, the unit is down, it logged its end, and no flag changes any more."""
    origin = lab.origin
    since = origin.run("wc -l < /var/log/bm-sim/activity.jsonl 2>/dev/null || echo 0").stdout.strip() or "0"
    origin.run("systemctl start bm-sim-activity")
    try:
        poll(lambda: int(origin.run("tail -n +%d /var/log/bm-sim/activity.jsonl | grep -c '\"event\": \"flags\"' || true"
                                    % (int(since) + 1)).stdout.strip() or 0) >= 3,
             "bm-sim-activity changed no flags")
        origin.run("bmctl stop >/dev/null")
        assert origin.run("systemctl is-active bm-sim-activity", check=False).stdout.strip() in ("inactive", "failed")
        events = [json.loads(line) for line in origin.run(
            "tail -n +%d /var/log/bm-sim/activity.jsonl" % (int(since) + 1)).stdout.splitlines() if line.strip()]
        assert events[-1].get("event") == "stopped" and events[-1]["changes"] >= 3, events[-3:]
        before = psql(origin, "bj-data", "SELECT md5(string_agg(system_flags::text, ',' ORDER BY mailbox_uid, imap_uid)) "
                                         "FROM t_mailbox_record")
        time.sleep(1)
        assert psql(origin, "bj-data", "SELECT md5(string_agg(system_flags::text, ',' ORDER BY mailbox_uid, imap_uid)) "
                                       "FROM t_mailbox_record") == before
    finally:
        origin.run("systemctl stop bm-sim-activity; bmctl start >/dev/null")
