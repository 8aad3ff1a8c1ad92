"""The simulator's bj/bj-data carry BlueMind's schema features (lab/FIDELITY.md rows 24-26), and
what the simulator writes goes through them: a seeded origin has rows in many change-set and
conversation-reference partitions, counters that match its items, and the account type enum."""
import smtplib


def psql(host, db, sql):
    return host.run("su postgres -c \"psql -X -q -At -v ON_ERROR_STOP=1 -d '%s'\"" % db, input=sql).stdout.strip()


def test_seeded_origin_fills_partitions_counters_and_the_enum(lab):
    parts = psql(lab.origin, "bj-data", "SELECT count(*) FROM pg_inherits WHERE inhparent = 't_container_changeset'::regclass")
    assert parts == "256"
    used = psql(lab.origin, "bj-data", "SELECT count(DISTINCT tableoid) FROM t_container_changeset")
    assert int(used) >= 20
    assert int(psql(lab.origin, "bj-data", "SELECT count(DISTINCT tableoid) FROM t_conversationreference")) >= 10
    # one change-set row per item and version kept (first and last), as many as the change log has
    # for items of at most two versions
    assert psql(lab.origin, "bj-data", "SELECT count(*) FROM t_container_changeset") == psql(
        lab.origin, "bj-data", "SELECT count(*) FROM t_container_changelog")
    wrong = psql(lab.origin, "bj-data", "SELECT count(*) FROM v_container_item_counter v, LATERAL (SELECT count(*) t, "
                                        "count(*) FILTER (WHERE flags & 1 = 0) ut FROM t_container_item i "
                                        "WHERE i.container_id = v.container_id) c WHERE (v.total, v.unseen_total) "
                                        "IS DISTINCT FROM (c.t, c.ut)")
    assert wrong == "0"
    assert psql(lab.origin, "bj-data", "SELECT sum(total) FROM v_container_item_counter") == psql(
        lab.origin, "bj-data", "SELECT count(*) FROM t_container_item")
    kinds = psql(lab.origin, "bj", "SELECT DISTINCT account_type FROM t_directory_entry ORDER BY 1").split()
    assert kinds == ["FULL", "SIMPLE"]
    keyless = psql(lab.origin, "bj-data", "SELECT count(*) FROM pg_index WHERE indisprimary "
                                          "AND indrelid = 't_container_acl'::regclass")
    assert keyless == "0" and int(psql(lab.origin, "bj-data", "SELECT count(*) FROM t_container_acl")) > 0


def test_a_delivery_goes_through_the_triggers(lab):
    before = psql(lab.origin, "bj-data", "SELECT count(*) FROM t_container_changelog")
    refs = psql(lab.origin, "bj-data", "SELECT last_value FROM t_conversationreference_id_seq")
    user = psql(lab.origin, "bj", "SELECT login || '@' || domain_uid FROM t_directory_entry "
                                  "WHERE domain_uid = 'lab.test' AND login <> 'admin' ORDER BY uid LIMIT 1")
    with smtplib.SMTP(lab.origin.ip, 25, timeout=30) as smtp:
        assert smtp.sendmail("tester@example.net", [user], b"Subject: schema test\r\n\r\nbody\r\n") == {}
    lab.origin.run("for i in $(seq 60); do test $(su postgres -c \"psql -XAtq -d bj-data -c "
                   "'SELECT count(*) FROM t_container_changelog'\") -gt %s && exit 0; sleep 1; done; exit 1" % before)
    assert int(psql(lab.origin, "bj-data", "SELECT last_value FROM t_conversationreference_id_seq")) > int(refs)
