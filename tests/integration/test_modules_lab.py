"""The seven modules run by ansible-playbook on the lab's hosts (see tests/lab for the lab).

Data lives under /srv/bmitest and in databases bmitest*, made here and removed afterwards, so the
BlueMind trees and databases of the lab are left alone; the API tests restore what they change.
"""

import difflib
import json
import shlex

import pytest

ROOT = "/srv/bmitest"
SPOOL = ROOT + "/spool"
LIB = ROOT + "/lib"
DATABASES = ["bmitest", "bmitest-data"]
API = dict(api_token_file="/etc/bm/bm-core.tok")  # the API modules run on the server itself


def make_trees(lab):
    """A spool and a lib on the origin (a hard link, an excluded file), nothing on the target."""
    lab.origin.run(
        "rm -rf {root} && mkdir -p {spool}/user/a {lib}/proc && cd {spool}/user/a "
        "&& printf 'message one' > 1. && ln 1. 2. && printf 'index' > cyrus.index && printf x > cyrus.squat "
        "&& head -c 300000 /dev/urandom > big && chown -R cyrus:mail {spool} "
        "&& printf 'db' > {lib}/mailboxes.db && printf 'pid' > {lib}/proc/123".format(root=ROOT, spool=SPOOL, lib=LIB))
    lab.target.run("rm -rf %s && mkdir -p %s" % (ROOT, ROOT))


@pytest.fixture(scope="module")
def trees(lab):
    make_trees(lab)
    yield [SPOOL, LIB]
    for host in (lab.origin, lab.target):
        host.run("rm -rf %s" % ROOT)


def sync(run_task, ssh_trust, check=False, diff=False, **args):
    params = dict(ssh_trust, trees=[SPOOL, LIB], excludes=["cyrus.squat", LIB + "/proc/"])
    params.update(args)
    return run_task("target", "bluemind_sync", params, check=check, diff=diff)


def by_path(result):
    return dict((t["path"], t) for t in result["trees"])


def test_sync_pull_keeps_owners_by_name_and_hard_links(lab, run_task, ssh_trust, trees):
    check = sync(run_task, ssh_trust, check=True, diff=True)
    assert check["changed"] is True and "1." in check["diff"]["prepared"]
    assert lab.target.run("ls %s" % ROOT).stdout.strip() == ""  # the dry run wrote nothing

    first = sync(run_task, ssh_trust)
    assert first["changed"] is True, first
    # 1., cyrus.index and big are sent; 2. is made as a hard link to 1.
    assert by_path(first)[SPOOL]["files"] == 3 and by_path(first)[SPOOL]["bytes"] >= 300000
    origin_uid = lab.origin.run("id -u cyrus").stdout.strip()
    owner = lab.target.run("stat -c '%%U:%%G %%u' %s/user/a/1." % SPOOL).stdout.split()
    assert owner[0] == "cyrus:mail" and owner[1] == lab.target.run("id -u cyrus").stdout.strip() != origin_uid
    inodes = lab.target.run("stat -c '%%i %%h' %s/user/a/1. %s/user/a/2." % (SPOOL, SPOOL)).stdout.split("\n")
    assert inodes[0] == inodes[1] and inodes[0].endswith(" 2")
    assert lab.target.run("test ! -e %s/user/a/cyrus.squat && test ! -e %s/proc" % (SPOOL, LIB), check=False).returncode == 0

    second = sync(run_task, ssh_trust)
    assert second["changed"] is False, second["trees"]


def test_sync_catches_a_same_size_rewrite_within_the_same_second(lab, run_task, ssh_trust, trees):
    path = SPOOL + "/user/a/cyrus.index"
    lab.origin.run("printf AAAAA > {p} && touch -d '2024-01-01 10:00:00.100000000' {p}".format(p=path))
    sync(run_task, ssh_trust)
    lab.origin.run("printf BBBBB > {p} && touch -d '2024-01-01 10:00:00.900000000' {p}".format(p=path))
    # plain `rsync -a` compares whole seconds: it does not see the rewrite (the hole in the procedure)
    shell = "ssh -i {key} -o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes".format(
        key=ssh_trust["ssh_key"], kh=ssh_trust["known_hosts"])
    plain = lab.target.run("rsync -a --dry-run -i -e %s root@%s:%s/ %s/" % (
        shlex.quote(shell), ssh_trust["origin_host"], SPOOL, SPOOL)).stdout
    assert "cyrus.index" not in plain
    result = sync(run_task, ssh_trust, diff=True)
    assert result["changed"] is True and "user/a/cyrus.index" in result["diff"]["prepared"]
    assert lab.target.run("cat %s" % path).stdout == "BBBBB"


def test_sync_checksum_since_catches_a_rewrite_that_keeps_the_time(lab, run_task, ssh_trust, trees):
    path = SPOOL + "/user/a/cyrus.index"
    first = sync(run_task, ssh_trust)
    clock = first["origin_clock_start"]
    assert isinstance(clock, float) and first["workers"] >= 1
    # written after that pull began, copied, then rewritten within the same timestamp tick:
    # same size, same time to the nanosecond
    stamp = "@%.9f" % (clock + 0.5)
    lab.origin.run("printf AAAAA > {p} && touch -d {s} {p}".format(p=path, s=stamp))
    sync(run_task, ssh_trust)
    lab.origin.run("printf CCCCC > {p} && touch -d {s} {p}".format(p=path, s=stamp))
    quick = sync(run_task, ssh_trust)
    assert by_path(quick)[SPOOL]["changed"] is False and "recent" not in by_path(quick)[SPOOL]
    assert lab.target.run("cat %s" % path).stdout == "AAAAA"  # the quick check cannot see it

    result = sync(run_task, ssh_trust, diff=True, checksum_since=clock - 1)
    spool = by_path(result)[SPOOL]
    assert result["changed"] is True and spool["recent_changed"] == 1 and spool["recent"] >= 1, result
    assert "user/a/cyrus.index" in result["diff"]["prepared"]
    assert lab.target.run("cat %s" % path).stdout == "CCCCC"
    assert by_path(result)[LIB]["recent_changed"] == 0

    # every file listed: the excluded ones (cyrus.squat, lib/proc/) are left out of the list, or
    # rsync would refuse it (rejecting excluded file-list name)
    everything = sync(run_task, ssh_trust, checksum_since=0)
    assert everything.get("failed") is not True, everything.get("msg")
    assert everything["changed"] is False
    assert (by_path(everything)[SPOOL]["recent"], by_path(everything)[LIB]["recent"]) == (4, 1)


def listing(host, tree):
    """Every entry of ``tree``: path, type, size (files and links), mode, owner and content's md5."""
    return host.run("cd %s && find . -printf '%%P %%y %%m %%u ' \\( -type f -printf '%%s ' -exec md5sum {} \\; "
                    "-o -printf '\\n' \\) | sort" % shlex.quote(tree)).stdout


def test_sync_final_pass_from_changed_entries_matches_the_origin(lab, run_task, ssh_trust, trees):
    """The window's pull (changed_since): the module compares the changed directories' entries, removes
    what the origin no longer has and pulls what differs; the result is the origin's tree."""
    lab.origin.run("cd {s}/user && mkdir -p b c e g f && printf b > b/x && printf old-c > c/y && printf e > e/z "
                   "&& printf g > g/w && printf f > f/v && printf d > d && chown -R cyrus:mail {s}/user "
                   "&& sleep 2".format(s=SPOOL))  # the tree's top older than the margin below: not pulled whole
    first = sync(run_task, ssh_trust)
    assert not first.get("failed"), first.get("msg")
    since = first["origin_clock_start"]
    lab.origin.run(
        "sleep 0.1 && cd {s}/user && rm a/2. && printf new > a/3. "  # a file gone, a file new
        "&& rm -r b "                                                 # a directory gone
        "&& mv c c.old && mv e c "                                    # a directory moved in where another was
        "&& rm d && mkdir d && printf in-d > d/f "                    # a file become a directory
        "&& rm -r f && printf file-f > f "                            # a directory become a file
        "&& mv g a/g".format(s=SPOOL))                               # a directory moved into another
    final = sync(run_task, ssh_trust, diff=True, changed_since=since - 2)
    assert not final.get("failed"), final.get("msg")
    spool = by_path(final)[SPOOL]
    assert spool.get("incremental") is True and spool["changed_dirs"] >= 3, (spool, final.get("whole_trees"))
    assert "*deleting   user/a/2." in final["diff"]["prepared"].splitlines()
    # everything but the excluded search index, which stays on the origin
    ours = [line for line in listing(lab.origin, SPOOL).splitlines() if "cyrus.squat" not in line]
    theirs = listing(lab.target, SPOOL).splitlines()
    assert theirs == ours, "\n".join(difflib.unified_diff(ours, theirs, "origin", "target", lineterm=""))
    assert sync(run_task, ssh_trust, verify=True).get("failed") is not True
    lab.origin.run("cd {s}/user && rm -rf c c.old d f a/g a/3. && ln a/1. a/2.".format(s=SPOOL))


def test_sync_final_pass_keeps_a_hard_link_made_since_the_last_pull(lab, run_task, ssh_trust, trees):
    """A message delivered to a second mailbox after the last pull: a new name, in another directory,
    of a file the target already has (Cyrus' single-instance store). The final pull's two rsync runs
    each see one name; the target must still hold one file with both names, as the origin does."""
    lab.origin.run("cd {s}/user && mkdir -p h1 h2 && printf shared > h1/7. && chown -R cyrus:mail h1 h2 "
                   "&& sleep 2".format(s=SPOOL))
    try:
        first = sync(run_task, ssh_trust)
        assert not first.get("failed"), first.get("msg")
        lab.origin.run("sleep 0.1 && cd {s}/user && ln h1/7. h2/7.".format(s=SPOOL))
        final = sync(run_task, ssh_trust, diff=True, changed_since=first["origin_clock_start"] - 2)
        assert not final.get("failed"), final.get("msg")
        assert by_path(final)[SPOOL].get("incremental") is True
        stat = "stat -c '%i %h' {s}/user/h1/7. {s}/user/h2/7.".format(s=SPOOL)
        (inode1, links1), (inode2, links2) = (line.split() for line in lab.target.run(stat).stdout.splitlines())
        assert (inode1 == inode2, links1, links2) == (True, "2", "2")
        # the name that came as a copy is linked to the other, as rsync itemizes a hard link
        relinked = [line for line in final["diff"]["prepared"].splitlines() if line.startswith("hf ")]
        assert relinked in (["hf          user/h2/7. => user/h1/7."], ["hf          user/h1/7. => user/h2/7."]), relinked
    finally:
        lab.origin.run("rm -rf {s}/user/h1 {s}/user/h2".format(s=SPOOL))


def test_sync_verify(lab, run_task, ssh_trust, trees):
    sync(run_task, ssh_trust)
    assert sync(run_task, ssh_trust, verify=True).get("failed") is not True
    lab.origin.run("printf 'message 1ne' > %s/user/a/1." % SPOOL)  # same size, content differs
    lab.origin.run("touch -r %s/user/a/2. %s/user/a/1." % (SPOOL, SPOOL))
    failed = sync(run_task, ssh_trust, verify=True)
    assert failed["failed"] is True and "differs from the origin in %s (" % SPOOL in failed["msg"]


@pytest.fixture(scope="module")
def databases(lab):
    sql = """
CREATE DATABASE "bmitest" OWNER bj ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8';
CREATE DATABASE "bmitest-data" OWNER bj ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8';
ALTER DATABASE "bmitest-data" SET TimeZone TO 'GMT';
ALTER DATABASE "bmitest-data" SET search_path TO "$user", public;
\\connect bmitest-data
CREATE EXTENSION hstore WITH SCHEMA pg_catalog;
CREATE EXTENSION btree_gin WITH SCHEMA pg_catalog;
CREATE EXTENSION ltree WITH SCHEMA pg_catalog;
CREATE EXTENSION unaccent WITH SCHEMA pg_catalog;
CREATE EXTENSION pg_stat_statements;
CREATE TABLE t_systemconf (id serial PRIMARY KEY, configuration hstore, path ltree);
CREATE INDEX ON t_systemconf USING gin (id, configuration);
INSERT INTO t_systemconf (configuration) SELECT ('k' || g || '=>v')::hstore FROM generate_series(1, 500) g;
CREATE TABLE "t_mailbox_record" (id bigserial PRIMARY KEY, body text);
INSERT INTO t_mailbox_record (body) SELECT md5(g::text) FROM generate_series(1, 2000) g;
ALTER TABLE t_systemconf OWNER TO bj; ALTER TABLE t_mailbox_record OWNER TO bj;
\\connect bmitest
CREATE TABLE t_domain (name text); INSERT INTO t_domain VALUES ('example.test'); ALTER TABLE t_domain OWNER TO bj;
"""
    drop = "".join('DROP DATABASE IF EXISTS "%s";\n' % name for name in DATABASES)
    lab.origin.run("su postgres -c 'psql -q -v ON_ERROR_STOP=1'", input=drop + sql)
    yield
    for host in (lab.origin, lab.target):
        host.run("su postgres -c 'psql -q'", input=drop)


def test_db_transfer_13_to_15_with_settings_and_counts(lab, run_task, ssh_trust, databases):
    args = dict(ssh_trust, databases=DATABASES, origin_db_password="bj", target_db_password="bj",
                pg_bin_dir="/usr/lib/postgresql/15/bin")
    check = run_task("target", "bluemind_db_transfer", args, check=True)
    assert check["changed"] is True and check["origin_version"].startswith("13")
    assert lab.target.run("su postgres -c \"psql -Atc \\\"SELECT count(*) FROM pg_database WHERE datname LIKE 'bmitest%'\\\"\"").stdout.strip() == "0"

    result = run_task("target", "bluemind_db_transfer", args)
    assert not result.get("failed"), result.get("msg")
    assert result["target_version"].startswith("15")
    assert (result["tables"], result["rows"]) == (3, 2501)
    data = [d for d in result["databases"] if d["name"] == "bmitest-data"][0]
    assert sorted(data["settings"]) == ['TimeZone=GMT', 'search_path="$user", public']
    settings = lab.target.run("su postgres -c \"psql -d bmitest-data -Atc 'SHOW search_path; SHOW TimeZone'\"").stdout
    assert settings.split() == ['"$user",', "public", "GMT"]
    assert "bj" not in json.dumps(result["executed_commands"]).replace('"bj"', "").replace("-U bj", "")
    # created as BlueMind creates it: the origin's locale, every extension in the origin's schema
    for name in DATABASES:
        assert extensions(lab.target, name) == extensions(lab.origin, name)
        assert locale(lab.target, name) == locale(lab.origin, name) == "en_US.UTF-8 en_US.UTF-8"
    assert {"hstore pg_catalog", "btree_gin pg_catalog", "ltree pg_catalog", "unaccent pg_catalog",
            "pg_stat_statements public"} <= set(extensions(lab.target, "bmitest-data").splitlines())
    assert {"name": "hstore", "schema": "pg_catalog"} in data["extensions"]


def extensions(host, db):
    return psql(host, db, "SELECT e.extname || ' ' || n.nspname FROM pg_extension e "
                          "JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1")


def locale(host, db):
    return psql(host, "postgres", "SELECT datcollate || ' ' || datctype FROM pg_database WHERE datname = '%s'" % db)


def test_pg_info_finds_what_the_target_lacks(lab, run_task, databases):
    origin = run_task("origin", "bluemind_pg_info", dict(databases=DATABASES, db_password="bj"))
    assert not origin.get("failed"), origin.get("msg")
    assert origin["changed"] is False and origin["locales"] == ["en_US.UTF-8"]
    assert {"btree_gin", "hstore", "ltree", "pg_stat_statements", "unaccent"} <= set(origin["extensions"])
    data = [d for d in origin["databases"] if d["name"] == "bmitest-data"][0]
    assert [e["schema"] for e in data["extensions"] if e["name"] == "hstore"] == ["pg_catalog"]
    fits = run_task("target", "bluemind_pg_info", dict(
        databases=DATABASES, db_password="bj", required_extensions=origin["extensions"],
        required_locales=origin["locales"]), check=True)
    assert fits["missing"] == [], fits["missing"]
    lacks = run_task("target", "bluemind_pg_info", dict(
        db_password="bj", required_extensions=["hstore", "pg_repack"], required_locales=["en_US.UTF-8", "sv_FI.UTF-8"]))
    assert len(lacks["missing"]) == 2
    assert "pg_repack" in lacks["missing"][0] and "postgresql-15-repack" in lacks["missing"][0]
    assert "cannot use the locale sv_FI.UTF-8" in lacks["missing"][1]


def psql(host, db, sql):
    return host.run("su postgres -c 'psql -X -At -v ON_ERROR_STOP=1 -d %s'" % db, input=sql).stdout.strip()


def row_hashes(host, db):
    """Per table: row count and md5 of every row's text (same rendering on both servers), sorted."""
    tables = psql(host, db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    return {table: psql(host, db, "SET TimeZone = 'UTC'; SELECT count(*), md5(string_agg(h, '' ORDER BY h)) "
                                  "FROM (SELECT md5(t::text) AS h FROM %s t) s" % table) for table in tables}


def test_db_row_sync_moves_only_what_changed_and_matches_by_content(lab, run_task, ssh_trust, databases):
    state = "/tmp/bmitest-db-sync.json"
    lab.target.run("rm -f %s" % state)
    args = dict(ssh_trust, databases=DATABASES, origin_db_password="bj", target_db_password="bj",
                pg_bin_dir="/usr/lib/postgresql/15/bin", state_file=state)
    first = run_task("target", "bluemind_db_transfer", args)
    assert not first.get("failed"), first.get("msg")
    # BlueMind writes on the origin: an update, deletes, inserts (one in a subtransaction)
    lab.origin.run("su postgres -c 'psql -q -v ON_ERROR_STOP=1 -d bmitest-data'", input=(
        "UPDATE t_mailbox_record SET body = 'changed' WHERE id IN (7, 8);\n"
        "DELETE FROM t_mailbox_record WHERE id BETWEEN 100 AND 109;\n"
        "BEGIN; SAVEPOINT s; INSERT INTO t_mailbox_record (body) VALUES ('new 1'), ('new 2'); RELEASE s; COMMIT;\n"))
    planned = run_task("target", "bluemind_db_transfer", args, check=True)
    data = [d for d in planned["databases"] if d["name"] == "bmitest-data"][0]
    assert (data["method"], data["compared_by"]) == ("rows", "transaction ids")
    assert (data["rows_copied"], data["rows_deleted"]) == (4, 12) and planned["changed"] is True
    assert row_hashes(lab.target, "bmitest-data") != row_hashes(lab.origin, "bmitest-data")  # check mode moved nothing

    again = run_task("target", "bluemind_db_transfer", args)
    assert not again.get("failed"), again.get("msg")
    data = [d for d in again["databases"] if d["name"] == "bmitest-data"][0]
    assert (data["method"], data["rows_copied"], data["rows_deleted"], data["tables_changed"]) == ("rows", 4, 12, 1)
    assert row_hashes(lab.target, "bmitest-data") == row_hashes(lab.origin, "bmitest-data")
    assert psql(lab.target, "bmitest-data", "SELECT last_value FROM t_mailbox_record_id_seq") == "2002"

    # nothing written since: nothing moves; a changed schema: the database is copied whole
    quiet = run_task("target", "bluemind_db_transfer", args)
    assert quiet["changed"] is False
    psql(lab.origin, "bmitest", "ALTER TABLE t_domain ADD COLUMN alias text")
    altered = run_task("target", "bluemind_db_transfer", args)
    bj = [d for d in altered["databases"] if d["name"] == "bmitest"][0]
    assert bj["method"] == "full" and bj["reason"].startswith("the schemas differ")
    assert row_hashes(lab.target, "bmitest") == row_hashes(lab.origin, "bmitest")


def test_bmctl_reads_the_state_and_plans(run_task):
    running = run_task("target", "bmctl", dict(state="started"))
    assert running["changed"] is False and running["status"]["bm-core.service"] == "running"
    assert "bm-nginx" in running["outside_target"]
    planned = run_task("target", "bmctl", dict(state="stopped"), check=True)
    assert planned["changed"] is True and planned["bmctl_action"] == "stop"


def test_info_on_the_origin(lab, run_task, trees):
    origin = run_task("origin", "bluemind_info", dict(API, trees=[SPOOL, "/nonexistent/tree"]), check=True)
    assert origin["changed"] is False
    # the package version is built per distribution; the API's softwareVersion is its upstream part
    assert origin["version"]["package"] == origin["version"]["api"] + "-bullseye"
    assert origin["version"]["package_upstream"] == origin["version"]["api"]
    assert origin["external_url"] == "bluemind.lab.test"
    assert origin["distribution"]["version"].startswith("11") and origin["postgresql"]["version"].startswith("13")
    spool = origin["trees"][0]
    # 1. and its hard link 2. count once, with cyrus.index, cyrus.squat and big
    assert spool["files"] == 4 and {"name": "cyrus", "id": int(lab.origin.run("id -u cyrus").stdout)} in spool["owners"]
    assert origin["trees"][1]["exists"] is False and origin["trees"][1]["filesystem"]["free_bytes"] > 0


def test_firewall_regenerates_the_rules_file(lab, run_task):
    result = run_task("target", "bluemind_firewall", dict(API, rules_file="/etc/init.d/bm-iptables"))
    assert not result.get("failed"), result.get("msg")
    assert result["api_path"] == "/system/security/_updatefirewallrules" and result["task"]["state"] == "Success"
    assert lab.target.ip in lab.target.run("cat /etc/init.d/bm-iptables").stdout


def test_mail_repair_waits_for_the_maps(lab, run_task):
    result = run_task("target", "bluemind_mail_repair", API)
    assert not result.get("failed"), result.get("msg")
    assert all(m["rebuilt"] for m in result["maps"]) and len(result["maps"]) == 5


def test_sysconf_mynetworks_as_a_set_and_login_refused(lab, run_task):
    before = "127.0.0.0/8, %s/32" % lab.target.ip  # the lab's value: loopback and the server's own address
    try:
        wanted = "198.51.100.0/24, 203.0.113.0/24"
        first = run_task("target", "bluemind_sysconf", dict(API, values=dict(mynetworks=wanted)), diff=True)
        assert first["changed"] is True and "198.51.100.0/24" in first["diff"]["after"]["mynetworks"]
        assert "198.51.100.0/24" in lab.target.run("postconf -h mynetworks").stdout
        again = run_task("target", "bluemind_sysconf", dict(API, values=dict(mynetworks="203.0.113.0/24 198.51.100.0/24")))
        assert again["changed"] is False
    finally:
        restored = run_task("target", "bluemind_sysconf", dict(API, values=dict(mynetworks=before)))
    assert restored["values"]["mynetworks"] == before  # the networks not given again were removed
    refused = run_task("target", "bluemind_sysconf", dict(api_password="wrong-Pa55", api_url="https://%s" % lab.target.ip,
                                                          ca_path="/etc/ssl/certs/bm_cert.pem"))
    assert refused["failed"] is True and "login refused for admin0@global.virt" in refused["msg"]
    assert "wrong-Pa55" not in json.dumps(dict((k, v) for k, v in refused.items() if k != "invocation"))


def test_sysconf_swaps_an_old_server_address_and_a_second_run_changes_nothing(lab, run_task):
    """As after a none-mode migration: My Networks names the old server; the module swaps it for the
    target's address, predicts what the server adds (its t_server and interface addresses), and a
    second run, check mode or not, changes nothing and sends nothing."""
    before = run_task("target", "bluemind_sysconf", API, check=True)["values"]["mynetworks"]
    log = "/var/log/bm-sim/api.jsonl"
    try:
        setup = run_task("target", "bluemind_sysconf",
                         dict(API, values=dict(mynetworks="192.0.2.10/32, 198.51.100.0/24, !192.0.2.11")))
        assert not setup.get("failed"), setup.get("msg")
        args = dict(API, replace_addresses=["192.0.2.10", "192.0.2.11"], replace_with=lab.target.ip)
        first = run_task("target", "bluemind_sysconf", args, diff=True)
        assert first["changed"] is True and lab.target.ip in first["server_addresses"]
        held = set(first["values"]["mynetworks"].split(", "))
        assert held == {"127.0.0.0/8", "198.51.100.0/24", "%s/32" % lab.target.ip}
        assert set(first["diff"]["after"]["mynetworks"].split(", ")) == held
        assert set(lab.target.run("postconf -h mynetworks").stdout.strip().split(", ")) == held
        posts = lab.target.run("grep -c configuration_update %s" % log).stdout.strip()
        for check in (True, False):
            again = run_task("target", "bluemind_sysconf", args, check=check, diff=True)
            assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"], again
        assert lab.target.run("grep -c configuration_update %s" % log).stdout.strip() == posts  # nothing sent
        refused = run_task("target", "bluemind_sysconf", dict(API, values=dict(mynetworks="10.0.0.0/33")))
        assert refused["failed"] is True and "HTTP 500" in refused["msg"]
        assert lab.target.run("grep -c configuration_update %s" % log).stdout.strip() == posts
    finally:
        run_task("target", "bluemind_sysconf", dict(API, values=dict(mynetworks=before)))


def test_readdress_moves_every_record_of_the_address_then_changes_nothing(lab, run_task):
    target, old = lab.target, "192.0.2.10"
    db = "PGPASSWORD=bj psql -X -h 127.0.0.1 -U bj -d bj -At -v ON_ERROR_STOP=1 -c "
    users = int(target.run(db + shlex.quote("SELECT count(*) FROM rc_users")).stdout)
    saved = target.run("cat /etc/cyrus-replication").stdout
    saved_ini = target.run("cat /etc/bm/bm.ini").stdout
    saved_servers = target.run(db + shlex.quote("SELECT id, ip FROM t_server ORDER BY id")).stdout
    saved_conf = target.run(db + shlex.quote("SELECT configuration -> 'host', configuration -> 'hz-member-address' "
                                             "FROM t_systemconf")).stdout
    spool = "/var/backups/bluemind/dp_spool/rsync"
    conf = ("SELECT configuration -> 'host', configuration -> 'hz-member-address', configuration -> 'external_url' "
            "FROM t_systemconf")
    external = target.run(db + shlex.quote(conf)).stdout.strip().split("|")[2]
    # the origin's copy: bm.ini (one value quoted), the server directory, the system configuration,
    # every profile, the replication and the spool name the old address, and one user already has a
    # profile on the target's address (kept, the old one reported)
    target.run(db + shlex.quote(
        "UPDATE rc_users SET mail_host = '%s'; INSERT INTO rc_users (username, mail_host) "
        "SELECT username, '%s' FROM rc_users ORDER BY username LIMIT 1; UPDATE t_server SET ip = '%s'; "
        "UPDATE t_systemconf SET configuration = configuration || hstore(ARRAY['host', '%s', 'hz-member-address', '%s'])"
        % (old, target.ip, old, old, old)))
    target.run("sed -i 's/^core_sync_host: .*/core_sync_host: %s/' /etc/cyrus-replication && "
               "sed -i -e 's/^host *=.*/host = %s/' -e 's/^hz-member-address *=.*/hz-member-address = \"%s\"/' /etc/bm/bm.ini && "
               "rm -rf %s && mkdir -p %s/%s/bm/core" % (old, old, old, spool, spool, old))
    servers = int(target.run(db + shlex.quote("SELECT count(*) FROM t_server")).stdout)
    args = dict(old_addresses=[old], new_address=target.ip, db_password="bj")
    try:
        check = run_task("target", "bluemind_readdress", args, check=True)
        assert check["changed"] is True and check["webmail"]["moved"] == users - 1
        assert check["server"] == dict(t_server=servers, t_systemconf=2) and check["bm_ini"] == [old, old]
        assert target.run(db + shlex.quote("SELECT count(*) FROM rc_users WHERE mail_host = '%s'" % old)).stdout.strip() == str(users)
        assert target.run(db + shlex.quote("SELECT DISTINCT ip FROM t_server")).stdout.split() == [old]
        assert "host = %s\n" % old in target.run("cat /etc/bm/bm.ini").stdout
        first = run_task("target", "bluemind_readdress", args, diff=True)
        assert not first.get("failed"), first.get("msg")
        assert first["webmail"] == dict(moved=users - 1, blocked=1, table=True)
        assert first["server"] == dict(t_server=servers, t_systemconf=2)
        assert target.run(db + shlex.quote("SELECT mail_host, count(*) FROM rc_users GROUP BY 1 ORDER BY 1")).stdout.split() == \
            sorted(["%s|1" % old, "%s|%d" % (target.ip, users)])
        assert target.run(db + shlex.quote("SELECT DISTINCT ip FROM t_server")).stdout.split() == [target.ip]
        # both keys set, the rest of the configuration kept
        assert target.run(db + shlex.quote(conf)).stdout.strip() == "%s|%s|%s" % (target.ip, target.ip, external)
        ini = target.run("cat /etc/bm/bm.ini").stdout
        assert "host = %s\n" % target.ip in ini and 'hz-member-address = "%s"\n' % target.ip in ini
        assert "core_sync_host: %s\n" % target.ip in target.run("cat /etc/cyrus-replication").stdout
        assert target.run("ls %s" % spool).stdout.split() == [target.ip]
        assert target.run("test -d %s/%s/bm/core" % (spool, target.ip), check=False).returncode == 0
        second = run_task("target", "bluemind_readdress", args)
        assert second["changed"] is False and second["webmail"] == dict(moved=0, blocked=1, table=True)
        assert second["server"] == dict(t_server=0, t_systemconf=0) and second["bm_ini"] == []
    finally:
        target.run(db + shlex.quote("DELETE FROM rc_users WHERE mail_host = '%s'" % old))
        for line in saved_servers.split():
            ident, ip = line.split("|")
            target.run(db + shlex.quote("UPDATE t_server SET ip = '%s' WHERE id = %s" % (ip, ident)))
        host, member = saved_conf.strip().split("|")
        target.run(db + shlex.quote("UPDATE t_systemconf SET configuration = configuration || "
                                    "hstore(ARRAY['host', '%s', 'hz-member-address', '%s'])" % (host, member)))
        target.run("cat > /etc/cyrus-replication", input=saved)
        target.run("cat > /etc/bm/bm.ini", input=saved_ini)
        target.run("rm -rf %s && mkdir -p %s/%s" % (spool, spool, target.ip))


# A POSIX ACL as the kernel stores it (system.posix_acl_access): version 2, then (tag, perm, id)
# entries: the owner rw, the user cyrus r, the owning group r, the mask r, others nothing.
ACL_ENTRIES = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, "cyrus"), (0x04, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF),
               (0x20, 0, 0xFFFFFFFF)]
ATTRS_PY = """
import os, pwd, struct, sys
path, action = sys.argv[1], sys.argv[2]
if action == "set":
    entries = %r
    blob = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, pwd.getpwnam(ident).pw_uid if isinstance(ident, str) else ident)
        for tag, perm, ident in entries)
    os.setxattr(path, "system.posix_acl_access", blob)
    os.setxattr(path, "user.bluemind.test", b"kept")
else:
    blob = os.getxattr(path, "system.posix_acl_access")
    users = [pwd.getpwuid(struct.unpack("<HHI", blob[4 + 8 * i:12 + 8 * i])[2]).pw_name
             for i in range((len(blob) - 4) // 8) if struct.unpack("<HHI", blob[4 + 8 * i:12 + 8 * i])[0] == 2]
    st = os.stat(path + ".sparse")
    print(os.getxattr(path, "user.bluemind.test").decode(), ",".join(users), st.st_size, st.st_blocks * 512)
""" % (ACL_ENTRIES,)


def test_sync_keeps_acls_xattrs_and_holes(lab, run_task, ssh_trust, trees):
    """An ACL entry for cyrus (another uid on the target), a user.* attribute and a 200 MB sparse
    file arrive as they are: the ACL names the target's cyrus, the sparse file takes no room."""
    path = SPOOL + "/attrs/acl-file"
    lab.origin.run("mkdir -p %s/attrs" % SPOOL)
    lab.origin.run("printf data > {p} && truncate -s 200M {p}.sparse && python3 -c {code} {p} set".format(
        p=path, code=shlex.quote(ATTRS_PY)))
    sync(run_task, ssh_trust)
    check = "python3 -c %s %s get" % (shlex.quote(ATTRS_PY), path)
    origin, target = lab.origin.run(check).stdout.split(), lab.target.run(check).stdout.split()
    assert target[:3] == origin[:3] == ["kept", "cyrus", str(200 * 1024 * 1024)]
    assert int(target[3]) < 1024 * 1024, "the sparse file arrived as %s bytes of zeros" % target[3]
    uids = [h.run("id -u cyrus").stdout.strip() for h in (lab.origin, lab.target)]
    assert uids[0] != uids[1]  # the ACL's user was mapped by name, not copied as a number
    assert sync(run_task, ssh_trust)["changed"] is False
    for host in (lab.origin, lab.target):
        host.run("rm -rf %s/attrs" % SPOOL)


def test_config_copy_copies_backs_up_and_rebuilds_the_maps_then_changes_nothing(lab, run_task, ssh_trust):
    """Real rsync over SSH and real postmap: a file of the list, a pattern resolved on the origin, the
    target's older copy kept in the backup folder, the map postfix reads rebuilt from its -flat source."""
    etc = ROOT + "/etc"
    lab.origin.run("rm -rf {r} && mkdir -p {e}/postfix && printf 'origin, longer\\n' > {e}/conf.ini && printf 'x@lab.test relay:\\n' "
                   "> {e}/postfix/transport-flat && printf 'junk' > {e}/postfix/transport.db".format(r=ROOT, e=etc))
    lab.target.run("rm -rf {r} && mkdir -p {e}/postfix && printf 'target\\n' > {e}/conf.ini".format(r=ROOT, e=etc))
    args = dict(ssh_trust, steps=["files"], paths=[etc.lstrip("/") + "/conf.ini"], patterns=[etc + "/postfix/*-flat", etc + "/none*"],
                backup_dir=ROOT + "/backups", postfix_maps=["transport"], postfix_dir=etc + "/postfix")
    try:
        check = run_task("target", "bluemind_config_copy", args, check=True, diff=True)
        assert check["changed"] is True and check["maps"] == []
        assert "conf.ini" in check["diff"]["prepared"], check["diff"]
        assert lab.target.run("cat %s/conf.ini" % etc).stdout == "target\n"

        first = run_task("target", "bluemind_config_copy", args)
        assert first["changed"] is True and any(line.endswith("postfix/transport-flat") for line in first["files"])
        assert lab.target.run("cat %s/conf.ini" % etc).stdout == "origin, longer\n"
        assert lab.target.run("cat %s%s/conf.ini" % (first["backup"], etc)).stdout == "target\n"
        assert first["maps"] == [etc + "/postfix/transport.db"]
        answer = lab.target.run("postmap -q x@lab.test hash:%s/postfix/transport" % etc).stdout.strip()
        assert answer == "relay:" and lab.target.run("ls %s/postfix" % etc).stdout.split() == ["transport-flat", "transport.db"]

        second = run_task("target", "bluemind_config_copy", args)
        assert second["changed"] is False and second["files"] == [] and second["maps"] == []
    finally:
        for host in (lab.origin, lab.target):
            host.run("rm -rf %s" % ROOT)


def start_gated_pull(lab, start_task, run_task, ssh_trust, before_start=lambda: None):
    """Fresh trees pulled once, ``before_start()`` run, then a gated final pull of what changed since that
    pull started in the background: ``(its task, gate file, job file, what before_start returned)``."""
    make_trees(lab)  # tests before this one may have removed them (the configuration copy's)
    lab.origin.run("sleep 2")  # the trees' tops older than the margin below: not pulled whole
    first = sync(run_task, ssh_trust)
    assert not first.get("failed"), first.get("msg")
    returned = before_start()
    gate, job = ROOT + "/run.gate", ROOT + "/jobs/pull.json"
    params = dict(ssh_trust, trees=[SPOOL, LIB], excludes=["cyrus.squat", LIB + "/proc/"],
                  changed_since=first["origin_clock_start"] - 2, gate_path=gate, gate_token="this-run",
                  gate_timeout=120, job_file=job)
    return start_task("target", "bluemind_sync", params), gate, job, returned


def wait_ready(lab, job):
    ready = lab.target.run("for i in $(seq 600); do [ -e %s.ready ] && exit 0; sleep 0.1; done; exit 1"
                           % shlex.quote(job), check=False)
    assert ready.returncode == 0, "no ready file within 60 s"


def test_a_gated_final_pull_walks_the_trees_before_its_gate_and_says_it_is_ready(lab, start_task, run_task, ssh_trust,
                                                                                 trees):
    """The window's pull started before the origin's stop (cold_sync): with changed_since it starts the
    follower, then pulls what changed (walking each tree on the origin over its SSH connection) while it
    waits at the gate, then creates its ready file, which the play waits for before the stop; no walk is
    left running on the origin, and once the gate opens the pull ends with what the follower saw."""
    def before_start():
        lab.origin.run("sleep 0.1 && printf later > {s}/user/a/4. && chown cyrus:mail {s}/user/a/4.".format(s=SPOOL))
        # a directory read two days ago: a walk that reads it sets its access time again (relatime)
        lab.origin.run("touch -a -d '2 days ago' {s}/user".format(s=SPOOL))
        return int(lab.origin.run(read_at).stdout)

    read_at = "stat -c %X {s}/user".format(s=SPOOL)
    play, gate, job, before = start_gated_pull(lab, start_task, run_task, ssh_trust, before_start)
    try:
        wait_ready(lab, job)
        assert lab.target.run("test -e %s" % shlex.quote(job), check=False).returncode != 0  # still at its gate
        walks = lab.origin.run("pgrep -f -- '[-]type d -printf' || true").stdout.split()
        assert walks == [], walks
        assert int(lab.origin.run(read_at).stdout) > before + 86400  # walked before the gate
        assert lab.target.run("cat %s/user/a/4." % SPOOL).stdout == "later"  # and pulled
    finally:
        lab.target.run("mkdir -p %s && printf 'this-run\\n' > %s" % (ROOT, gate))
    final = play.result()
    assert not final.get("failed"), final.get("msg")
    assert by_path(final)[SPOOL].get("incremental") is True and final["waited_for_gate"] > 0
    assert lab.target.run("cat %s/user/a/4." % SPOOL).stdout == "later"
    lab.origin.run("rm -f %s/user/a/4." % SPOOL)


LISTING = ("cd {tree} && find . -name cyrus.squat -prune -o -path ./proc -prune -o -type d -printf '%P d %u\\n' "
           "-o -printf '%P %y %s %n %u\\n' | sort")


def gated_pull_with_changes_after_ready(lab, start_task, run_task, ssh_trust, change, before="true"):
    """A gated final pull (changed_since) whose follower and pull ran before the gate; ``before`` (a shell
    command) run on the origin before it starts, ``change`` once it said ready, then the gate opened.
    Return its result."""
    play, gate, job, _none = start_gated_pull(lab, start_task, run_task, ssh_trust, lambda: lab.origin.run(before))
    try:
        wait_ready(lab, job)
        lab.origin.run(change)
    finally:
        lab.target.run("mkdir -p %s && printf 'this-run\\n' > %s" % (ROOT, gate))
    final = play.result()
    assert not final.get("failed"), final.get("msg")
    for tree in (SPOOL, LIB):
        assert lab.target.run(LISTING.format(tree=tree)).stdout == lab.origin.run(LISTING.format(tree=tree)).stdout
    return final


def test_a_gated_final_pull_takes_what_changed_after_its_walk_from_the_follower(lab, start_task, run_task, ssh_trust):
    """Changes made after the gated pull said ready (the origin still serving), not walked again in the
    window: a new mailbox, a message delivered to two mailboxes (one file, two links), a message of before
    (pulled before the stop) linked into another mailbox, an index written in place, a file removed. The
    follower saw them; the target ends as the origin, links included."""
    final = gated_pull_with_changes_after_ready(lab, start_task, run_task, ssh_trust, (
        "cd {s}/user && mkdir b && printf new > b/1. && ln b/1. a/3. && printf more >> a/cyrus.index && rm a/big "
        "&& ln a/6. b/6. && chown -R cyrus:mail b a/3.").format(s=SPOOL),
        before="printf six > {s}/user/a/6. && chown cyrus:mail {s}/user/a/6.".format(s=SPOOL))
    assert final["follower"]["walked"] == {}, (final["follower"], final.get("warnings"))
    assert sorted(final["follower"]["trees"]) == sorted([SPOOL, LIB])
    assert sorted(final["follower"]["pulled_before_stop"]) == sorted([SPOOL, LIB])
    assert final["follower"]["watches"] >= 4
    spool = by_path(final)[SPOOL]
    assert spool["listed_by"] == "follower" and spool["incremental"] is True
    assert lab.target.run("stat -c %i {s}/user/b/1. {s}/user/a/3.".format(s=SPOOL)).stdout.split()[0] == \
        lab.target.run("stat -c %i {s}/user/a/3.".format(s=SPOOL)).stdout.strip()
    assert lab.target.run("cat %s/user/a/cyrus.index" % SPOOL).stdout == "indexmore"


def test_a_gated_final_pull_walks_in_the_window_when_a_directory_was_renamed(lab, start_task, run_task, ssh_trust):
    """A mailbox renamed after the pull said ready: the paths below it changed, which the follower cannot
    follow; it says so and the window walks the trees, which end as the origin's."""
    final = gated_pull_with_changes_after_ready(lab, start_task, run_task, ssh_trust,
                                                "mv %s/user/a %s/user/z" % (SPOOL, SPOOL))
    assert final["follower"]["trees"] == []
    assert "renamed" in final["follower"]["walked"][SPOOL]
    assert by_path(final)[SPOOL]["listed_by"] == "walk"
    assert lab.target.run("test -d %s/user/z && test ! -e %s/user/a" % (SPOOL, SPOOL), check=False).returncode == 0
