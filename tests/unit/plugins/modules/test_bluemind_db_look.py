import json
from unittest import mock

from ansible_collections.bluemind.migration.plugins.modules import bluemind_db_look

from ...conftest import assert_no_secret

MODULE = "ansible_collections.bluemind.migration.plugins.modules.bluemind_db_look."
EPOCH = ["2026-12-05 01:00:00+00", None, "2026-12-04 18:00:00+00", "150008", "on"]
PASSWORD = "0rigin-pw-123"


def signatures(tables, epoch=None):
    return dict(quiet_at=None, stats_at=None, udp=None, epoch=epoch or EPOCH, tables=tables)


MARK = {"public.a": [1, 1, 5, 0, 0], "public.b": [2, 2, 0, 0, 0], "public.c": [3, 3, 9, 9, 0]}


class Origin(object):
    """The origin's statistics through the tunnel: each reading of a database returns the next of its list."""

    def __init__(self, readings):
        self.readings = readings
        self.queries = []

    def query(self, server, run, database, sql, what, snapshot=None, own_options=True):
        self.queries.append((database, sql, own_options))
        if "server_version_num')" in sql and "json" not in sql:
            return [["150008"]]
        return [[json.dumps(self.readings[database].pop(0))]]


def run_look(run_module, tmp_path, origin, **extra):
    for name in ("key", "known_hosts"):
        (tmp_path / name).write_text("x")
    args = dict(origin_host="10.0.0.10", ssh_key=str(tmp_path / "key"), known_hosts=str(tmp_path / "known_hosts"),
                origin_db_password=PASSWORD, pg_bin_dir=str(tmp_path), sample_seconds=0.01)
    args.update(extra)

    class FakeTunnel(object):
        def __init__(self, *_args):
            self.port = 15432

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    with mock.patch(MODULE + "Tunnel", FakeTunnel), \
            mock.patch(MODULE + "PgServer.query", autospec=True, side_effect=origin.query):
        return run_module(bluemind_db_look, args)


def test_the_look_counts_tables_written_since_the_mark_and_during_its_sample(run_module, tmp_path):
    state = tmp_path / "db-sync.json"
    state.write_text(json.dumps({"bj-data": {"signatures": {"origin": signatures(MARK), "target": {}}}}))
    now = dict(MARK, **{"public.a": [1, 1, 6, 0, 0], "public.d": [4, 4, 1, 0, 0]})
    later = dict(now, **{"public.b": [2, 2, 1, 0, 0]})
    origin = Origin({"bj": [signatures({}), signatures({})], "bj-data": [signatures(now), signatures(later)]})
    result = run_look(run_module, tmp_path, origin, state_file=str(state))
    assert not result.get("failed"), result
    assert result["changed"] is False and result["sample_seconds"] >= 0.01
    bj, data = result["databases"]
    # bj: no mark kept (its last pass recorded none), nothing written while it looked
    assert bj == dict(name="bj", tables=0, written_since_pass=None, written_in_sample=0, rows_since_pass=None,
                      rows_in_sample=0, why="the last pass kept no mark of the origin")
    # bj-data: a written (1 row) and d new (1 row) since the mark; b written (1 row) between the two readings
    assert data == dict(name="bj-data", tables=4, written_since_pass=2, written_in_sample=1, rows_since_pass=2,
                        rows_in_sample=1, why=None)
    # the statistics with the server's own settings (track_counts as BlueMind's sessions have it), as the pass reads them
    assert [own for _db, _sql, own in origin.queries] == [True, False, False, False, False]
    assert "pg_read_file('/proc/net/udp')" not in origin.queries[1][1]  # PostgreSQL 15: no statistics socket
    assert_no_secret(result, PASSWORD)


def test_a_look_without_a_sample_or_a_state_file_says_what_it_can(run_module, tmp_path):
    origin = Origin({"bj": [signatures({})], "bj-data": [signatures(MARK)]})
    result = run_look(run_module, tmp_path, origin, sample_seconds=0)
    assert [entry["written_in_sample"] for entry in result["databases"]] == [None, None]
    assert [entry["written_since_pass"] for entry in result["databases"]] == [None, None]
    assert result["databases"][1]["tables"] == 3


def test_a_look_that_cannot_reach_the_origin_fails_and_changes_nothing(run_module, tmp_path):
    args = dict(origin_host="10.0.0.10", ssh_key=str(tmp_path / "missing"), known_hosts=str(tmp_path / "missing"),
                origin_db_password=PASSWORD, pg_bin_dir=str(tmp_path))
    result = run_module(bluemind_db_look, args)
    assert result["failed"] and result["changed"] is False
    assert result["msg"].startswith("the look at the origin's databases failed: ssh_key ") and "Nothing was changed" in result["msg"]
    bad = run_module(bluemind_db_look, dict(args, sample_seconds=-1))
    assert bad["failed"] and "sample_seconds must be 0 or more" in bad["msg"]


def test_a_restart_since_the_mark_counts_every_table_written():
    marks = {"bj-data": signatures(MARK)}
    restarted = signatures(MARK, epoch=["2026-12-05 02:00:00+00"] + EPOCH[1:])
    assert bluemind_db_look.compare(["bj-data"], marks, {"bj-data": restarted}, None)[0]["written_since_pass"] == 3
    unread = bluemind_db_look.compare(["bj-data"], marks, {"bj-data": None}, None)[0]
    assert unread["tables"] is None and unread["why"] == "its statistics could not be read on the origin"
