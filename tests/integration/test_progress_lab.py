"""A pull that takes seconds shows its progress in ansible-playbook's default output (issue 14).

The origin's link is slowed to 40 Mbit/s while a tree of its own (under /srv/bmprogress, made here
and removed afterwards) is pulled, so the pull lasts about ten seconds; with a progress interval of
2 s the task prints lines for the tree before its result. The lines are read as an operator reads
them: tree, bytes moved, percent of the origin's size, rate, time left.
"""

import json
import os
import re
import subprocess
import time

import pytest
from labpaths import LAB_INVENTORY, TOP, VENV_BIN

ROOT = "/srv/bmprogress"
TREE = ROOT + "/spool"
BIG_MIB = 40
SMALL_FILES = 50
PROGRESS_FILE = ROOT + "/pull-progress.json"
LINE = re.compile(
    r"^\[(?P<host>[\w.-]+)\] pull (?P<tree>\S+): (?P<moved>[\d.]+ \w?i?B) moved in (?P<files>[\d,]+) files, "
    r"(?:(?P<checked>[\d,]+)(?: of (?P<entries>[\d,]+))? entries checked, )?"
    r"(?P<percent>[\d.]+)% of (?P<size>[\d.]+ \w?i?B), (?P<rate>[\d.]+ \w?i?B)/s, ETA (?P<eta>\w+), running \w+$")


@pytest.fixture(scope="module")
def slow_tree(lab):
    """A tree of one 40 MiB file and a few small ones on the origin, its link slowed; the target
    has none of it. All removed afterwards, the link at full speed again."""
    lab.origin.run("rm -rf {root} && mkdir -p {tree}/small && head -c {big}M /dev/urandom > {tree}/big "
                   "&& for i in $(seq {n}); do head -c 1000 /dev/urandom > {tree}/small/$i; done".format(
                       root=ROOT, tree=TREE, big=BIG_MIB, n=SMALL_FILES))
    lab.target.run("rm -rf %s && mkdir -p %s" % (ROOT, ROOT))
    lab.origin.run("tc qdisc replace dev eth0 root tbf rate 40mbit burst 64kb latency 400ms")
    try:
        yield TREE
    finally:
        lab.origin.run("tc qdisc del dev eth0 root", check=False)
        for host in (lab.origin, lab.target):
            host.run("rm -rf %s" % ROOT)


def play(ssh_trust, interval):
    return [{"hosts": "target", "gather_facts": False, "tasks": [{
        "name": "Pull the slow tree",
        "bluemind.migration.bluemind_sync": dict(ssh_trust, trees=[TREE], workers=1, progress_interval=interval,
                                                 progress_path=PROGRESS_FILE),
    }]}]


def run_playbook(collections_path, tmp_path, ssh_trust, interval):
    """ansible-playbook with the default callback, as an operator runs it; returns the process."""
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # not the checkout's (its profiling callback)
    (tmp_path / "play.json").write_text(json.dumps(play(ssh_trust, interval)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections_path,
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="1")
    # the progress lines go to stderr: merged as a terminal shows them, in order with the task's result
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(LAB_INVENTORY), str(tmp_path / "play.json")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(TOP),
                          timeout=120, check=False)


def mib(text):
    number, unit = text.split()
    return float(number) * {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}[unit] / 1024 ** 2


def test_a_pull_of_seconds_shows_progress_lines_with_an_eta_before_its_result(lab, ssh_trust, slow_tree,
                                                                              collections_path, tmp_path):
    jobs = "ls -A /root/.ansible_async 2>/dev/null || true"
    jobs_before = lab.target.run(jobs).stdout.split()
    started = time.monotonic()
    proc = run_playbook(collections_path, tmp_path, ssh_trust, interval=2)
    seconds = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, out[-5000:]
    result_at = out.index("changed: [%s]" % lab.target.name)
    lines = [m for m in map(LINE.match, out[:result_at].splitlines()) if m]
    assert lines, "no progress line before the task's result in %.0f s:\n%s" % (seconds, out)
    origin_mib = BIG_MIB + SMALL_FILES * 1000 / 1024.0 ** 2
    for line in lines:
        assert (line["host"], line["tree"]) == (lab.target.name, TREE), line.group(0)
        assert 0 <= float(line["percent"]) < 100, line.group(0)
        # the origin's size, measured there: 40 MiB and the small files
        assert abs(mib(line["size"]) - origin_mib) < 0.1, line.group(0)
        assert mib(line["moved"]) <= origin_mib and mib(line["rate"]) < 40 / 8.0 * 1.1, line.group(0)
    # time goes on: the figures grow from line to line, and at least one line has a time left
    assert [float(m["percent"]) for m in lines] == sorted(float(m["percent"]) for m in lines)
    assert any(m["eta"] != "unknown" for m in lines), [m.group(0) for m in lines]
    # at the end, the tree is the origin's, and the file on the target has the last figures
    assert (lab.target.run("md5sum %s/big" % TREE).stdout.split()[0]
            == lab.origin.run("md5sum %s/big" % TREE).stdout.split()[0])
    last = json.loads(lab.target.run("cat %s" % PROGRESS_FILE).stdout)
    [tree] = last["trees"]
    assert last["finished"] is True and (tree["state"], tree["percent"]) == ("done", 100.0)
    assert tree["bytes"] >= BIG_MIB * 1024 ** 2 and tree["size_bytes"] == BIG_MIB * 1024 ** 2 + SMALL_FILES * 1000
    assert lab.target.run(jobs).stdout.split() == jobs_before  # the async job's file is removed
    assert seconds < 60, "the slowed pull took %.0f s" % seconds


DB = "bmprogress"
DB_PROGRESS_FILE = ROOT + "/db-progress.json"
DB_LINE = re.compile(
    r"^\[(?P<host>[\w.-]+)\] databases (?P<db>\S+): (?P<moved>[\d.]+ \w?i?B) moved, "
    r"(?P<percent>[\d.]+)% of (?P<size>[\d.]+ \w?i?B), (?P<rate>[\d.]+ \w?i?B)/s, ETA (?P<eta>\w+), running \w+$")


@pytest.fixture(scope="module")
def slow_database(lab):
    """A database of about 40 MiB of table data on the origin (not on the target), its link slowed as for
    the tree; dropped on both sides afterwards."""
    drop = 'DROP DATABASE IF EXISTS "%s"; DROP DATABASE IF EXISTS "%s.incomplete";' % (DB, DB)
    lab.origin.run("su postgres -c 'psql -q -v ON_ERROR_STOP=1'", input=(
        drop + "\nCREATE DATABASE %s OWNER bj ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'en_US.UTF-8' "
        "LC_CTYPE 'en_US.UTF-8';\n\\connect %s\n"
        "CREATE TABLE t_body AS SELECT g AS id, repeat(md5(g::text), 16) AS body FROM generate_series(1, 80000) g;\n"
        "ALTER TABLE t_body OWNER TO bj;\n" % (DB, DB)))
    lab.target.run("su postgres -c 'psql -q'", input=drop)
    lab.target.run("mkdir -p %s" % ROOT)
    lab.origin.run("tc qdisc replace dev eth0 root tbf rate 40mbit burst 64kb latency 400ms")
    try:
        yield DB
    finally:
        lab.origin.run("tc qdisc del dev eth0 root", check=False)
        for host in (lab.origin, lab.target):
            host.run("su postgres -c 'psql -q'", input=drop, check=False)
        lab.target.run("rm -rf %s" % ROOT)


def test_a_first_database_copy_of_seconds_shows_progress_lines(lab, ssh_trust, slow_database, collections_path,
                                                               tmp_path):
    """The database pass's action prints, per database copied whole, the dump's bytes against the
    origin's table data, with a rate and a time left (issue 14); on stderr, so that a machine-readable
    stdout callback (json here) still gives whole JSON."""
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    (tmp_path / "play.json").write_text(json.dumps([{"hosts": "target", "gather_facts": False, "tasks": [{
        "name": "Copy the slow database",
        "bluemind.migration.bluemind_db_transfer": dict(
            ssh_trust, databases=[DB], origin_db_password="bj", target_db_password="bj",
            pg_bin_dir="/usr/lib/postgresql/15/bin", progress_interval=2, progress_path=DB_PROGRESS_FILE),
    }]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections_path,
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(LAB_INVENTORY), str(tmp_path / "play.json")],
                          capture_output=True, text=True, env=env, cwd=str(TOP), timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    [task] = json.loads(proc.stdout)["plays"][0]["tasks"]
    result = task["hosts"][lab.target.name]
    assert result["changed"] is True and result["progress"]["finished"] is True
    lines = [m for m in map(DB_LINE.match, proc.stderr.splitlines()) if m]
    assert lines, "no progress line on stderr:\n%s" % proc.stderr
    table_data = int(lab.origin.run("su postgres -c \"psql -d %s -Atc \\\"SELECT pg_table_size('t_body')\\\"\"" % DB)
                     .stdout.strip())
    for line in lines:
        assert (line["host"], line["db"]) == (lab.target.name, DB), line.group(0)
        assert 0 <= float(line["percent"]) < 100, line.group(0)
        assert abs(mib(line["size"]) - table_data / 1024.0 ** 2) < 0.1, line.group(0)
    assert [float(m["percent"]) for m in lines] == sorted(float(m["percent"]) for m in lines)
    assert any(m["eta"] != "unknown" for m in lines), [m.group(0) for m in lines]
    last = json.loads(lab.target.run("cat %s" % DB_PROGRESS_FILE).stdout)
    [entry] = last["trees"]
    assert last["finished"] is True and last["job"] == "databases"
    assert (entry["path"], entry["state"], entry["files"]) == (DB, "done", None)
    # read when the copy began; pg_table_size counts the free space and visibility maps too, which
    # autovacuum may have grown since
    assert abs(entry["size_bytes"] - table_data) < table_data / 100.0, (entry["size_bytes"], table_data)
    # the copy is whole on the target
    count = "su postgres -c \"psql -d %s -Atc 'SELECT count(*), md5(string_agg(id || body, NULL ORDER BY id)) FROM t_body'\"" % DB
    assert lab.target.run(count).stdout == lab.origin.run(count).stdout
