"""Large objects through bluemind_db_transfer on the lab (PostgreSQL 13 -> 15): the whole copy carries
them, and a row sync pass, which moves table rows only, gives way to a whole copy when they differ
(issue 11, "Nothing lost"), so the target ends with the origin's objects after every pass.

The objects live in a database of this test (bmitest-lo, made as BlueMind makes its databases), removed
from both hosts at the end, so the lab's bj and bj-data are left alone for the tests after this one.
"""

import pytest

DATABASE = "bmitest-lo"
STATE = "/tmp/bmitest-lo-sync.json"
# The passwords through a pgpass file: given as options (no_log), the lab's password "bj" would be
# masked inside every word of the result ("o********ects").
PGPASS = "/tmp/bmitest-lo.pgpass"
# every large object as pg_dump carries it: oid, owner, ACL, comment, size and md5 of the content
OBJECTS_SQL = ("SELECT m.oid, pg_get_userbyid(m.lomowner), m.lomacl, obj_description(m.oid, 'pg_largeobject'), "
               "length(lo_get(m.oid)), md5(lo_get(m.oid)) FROM pg_largeobject_metadata m ORDER BY m.oid")


def psql(host, sql, db=DATABASE):
    return host.run("su postgres -c 'psql -X -At -v ON_ERROR_STOP=1 -d %s'" % db, input=sql).stdout.strip()


@pytest.fixture(scope="module")
def database(lab):
    drop = 'DROP DATABASE IF EXISTS "%s";\n' % DATABASE
    psql(lab.origin, drop + (
        "CREATE DATABASE \"%s\" OWNER bj ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'en_US.UTF-8' "
        "LC_CTYPE 'en_US.UTF-8';\n" % DATABASE), db="postgres")
    psql(lab.origin, "CREATE TABLE t_document (id serial PRIMARY KEY, name text, content oid);\n"
                     "ALTER TABLE t_document OWNER TO bj;\n")
    lab.target.run("rm -f {s} && install -m 600 /dev/null {p} && echo '127.0.0.1:*:*:bj:bj' > {p}".format(s=STATE, p=PGPASS))
    yield
    for host in (lab.origin, lab.target):
        psql(host, drop, db="postgres")  # the objects go with their database
    lab.target.run("rm -f %s %s" % (STATE, PGPASS))


def transfer(run_task, ssh_trust, check=False):
    args = dict(ssh_trust, databases=[DATABASE], pgpass_file=PGPASS, pg_bin_dir="/usr/lib/postgresql/15/bin",
                state_file=STATE)
    result = run_task("target", "bluemind_db_transfer", args, check=check)
    assert not result.get("failed"), result.get("msg")
    return result["databases"][0]


def objects(host):
    return psql(host, OBJECTS_SQL).splitlines()


def test_large_objects_reach_the_target_at_every_pass(lab, run_task, ssh_trust, database):
    # as BlueMind's bj would write one (it does not: its binary columns are bytea), owned by bj, with
    # a comment and a grant, its oid kept in a row
    first_oid = psql(lab.origin, "SELECT lo_from_bytea(0, convert_to('first version', 'UTF8'))")
    psql(lab.origin, "ALTER LARGE OBJECT {o} OWNER TO bj; COMMENT ON LARGE OBJECT {o} IS 'a document';\n"
                     "GRANT SELECT ON LARGE OBJECT {o} TO PUBLIC;\n"
                     "INSERT INTO t_document (name, content) VALUES ('first', {o});".format(o=first_oid))
    whole = transfer(run_task, ssh_trust)
    assert (whole["method"], whole["reason"], whole["large_objects"]) == ("full", "no copy on the target yet", 1)
    assert objects(lab.target) == objects(lab.origin) and len(objects(lab.origin)) == 1
    assert "|bj|{bj=rw/bj,=r/bj}|a document|13|" in objects(lab.target)[0]

    # nothing changed: the row sync, which leaves the objects as they are
    quiet = transfer(run_task, ssh_trust)
    assert (quiet["method"], quiet["rows_copied"], quiet["large_objects"]) == ("rows", 0, 1)

    # the object rewritten in place (same size, same oid, no row changes): the hole of issue 11, a row
    # sync would keep the old content on the target; the pass copies the database whole instead
    psql(lab.origin, "SELECT lo_put(%s, 0, convert_to('FIRST', 'UTF8'))" % first_oid)
    planned = transfer(run_task, ssh_trust, check=True)
    assert (planned["method"], planned["reason"]) == (
        "full", "the large objects differ (1 on both sides, but their contents, owners, ACLs or comments differ; "
                "the row sync moves table rows only)")
    assert objects(lab.target) != objects(lab.origin)  # check mode changed nothing
    rewritten = transfer(run_task, ssh_trust)
    assert rewritten["method"] == "full" and rewritten["reason"].startswith("the large objects differ (1 on both sides")
    assert objects(lab.target) == objects(lab.origin)
    assert psql(lab.target, "SELECT convert_from(lo_get(%s), 'UTF8')" % first_oid) == "FIRST version"

    # rewritten again, and another one created: 1.5 MiB, then written at 3.2 MB past a hole (more than one
    # part of the module's comparison)
    second_oid = psql(lab.origin, "SELECT lo_from_bytea(0, decode(repeat('0123456789abcdef', 196608), 'hex'))")
    psql(lab.origin, "SELECT lo_put({s}, 3200000, convert_to('after a hole', 'UTF8')); "
                     "SELECT lo_put({f}, 0, convert_to('third', 'UTF8'));\n"
                     "INSERT INTO t_document (name, content) VALUES ('second', {s});".format(s=second_oid, f=first_oid))
    added = transfer(run_task, ssh_trust)
    assert (added["method"], added["large_objects"]) == ("full", 2)
    assert added["reason"].startswith("the large objects differ (2 on the origin, 1 on the target;")
    assert objects(lab.target) == objects(lab.origin) and len(objects(lab.target)) == 2
    assert psql(lab.target, "SELECT convert_from(lo_get(%s), 'UTF8')" % first_oid) == "third version"
    assert psql(lab.target, "SELECT length(lo_get(%s))" % second_oid) == str(3200000 + len("after a hole"))

    # unlinked on the origin: gone from the target too
    psql(lab.origin, "DELETE FROM t_document WHERE content = {f}; SELECT lo_unlink({f});".format(f=first_oid))
    removed = transfer(run_task, ssh_trust)
    assert (removed["method"], removed["large_objects"]) == ("full", 1)
    assert removed["reason"].startswith("the large objects differ (1 on the origin, 2 on the target;")
    assert objects(lab.target) == objects(lab.origin)
    assert psql(lab.target, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = %s" % first_oid) == "0"

    # and a pass where only rows changed is a row sync again, the objects verified equal after it
    psql(lab.origin, "UPDATE t_document SET name = 'renamed'")
    rows = transfer(run_task, ssh_trust)
    assert (rows["method"], rows["rows_copied"], rows["large_objects"]) == ("rows", 1, 1)
    assert objects(lab.target) == objects(lab.origin)
