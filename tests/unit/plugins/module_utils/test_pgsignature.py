import copy

from ansible_collections.bluemind.migration.plugins.module_utils.pgsignature import (
    APP_NAME,
    side_signatures,
    signature_sql,
    table_changes,
    udp_drops,
    unchanged_tables,
    unwritten_tables,
)

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
STATS_SOCKET = "13766: 0100007F:CBD9 0100007F:CBD9 01 00000000:00000000 00:00000000 00000000   106        0 9229346 2 00000000782f117f %d\n"
DNS_SOCKET = " 2845: 0B00007F:A130 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 9227673 2 00000000a9cf490b 4\n"


def reading(version="150008", quiet_at=100.0, stats_at=None, udp=None, tables=None, epoch=None):
    return dict(quiet_at=quiet_at, stats_at=stats_at, udp=udp,
                epoch=epoch or ["2026-11-30 01:00:43+00", None, "2026-11-29 18:10:48+00", version, "on"],
                tables=tables or {"public.a": [10, 10, 5, 1, 0], "public.b": [11, 11, 0, 0, 0],
                                  "public.c": [12, 12, 7, 7, 7]})


def legacy(drops=0, **kwargs):
    kwargs.setdefault("stats_at", kwargs.get("quiet_at", 100.0) and 100.6)
    return reading(version="130016", udp=HEADER + DNS_SOCKET + STATS_SOCKET % drops, **kwargs)


def kept(origin=None, target=None):
    """What pass k kept: the origin's mark (no wait) and the target's record."""
    return dict(origin=side_signatures(origin or legacy(quiet_at=None), False),
                target=side_signatures(target or reading(), True))


def test_the_statistics_socket_is_the_one_connected_to_itself():
    assert udp_drops(HEADER + DNS_SOCKET + STATS_SOCKET % 3) == [["9229346", "3"]]
    assert udp_drops("") is None and udp_drops(None) is None
    assert udp_drops(HEADER) == []  # read, and no such socket: nothing to lose


def test_tables_unchanged_on_both_sides_are_skipped_the_others_listed():
    last = kept()
    origin_now, target_now = legacy(), reading()
    origin_now["tables"]["public.a"][2] = 6  # an insert on the origin
    target_now["tables"]["public.c"][4] = 8  # a delete on the target
    skipped, why = unchanged_tables(last, side_signatures(origin_now, True), side_signatures(target_now, True))
    assert (skipped, why) == ({"public.b"}, None)


def test_tables_that_deleted_nothing_on_the_origin_and_are_untouched_on_the_target_are_undeleted():
    origin_now, target_now = legacy(), reading()
    origin_now["tables"]["public.a"][2:4] = [9, 4]  # inserts and updates on the origin: still undeleted
    origin_now["tables"]["public.c"][4] = 8  # a delete on the origin
    origin_now["tables"]["public.d"] = [13, 13, 1, 0, 0]  # no signature kept
    unchanged, undeleted, untouched, why = table_changes(kept(), side_signatures(origin_now, True),
                                                         side_signatures(target_now, True))
    assert (unchanged, undeleted, why) == ({"public.b"}, {"public.a", "public.b"}, None)
    assert untouched == {"public.a", "public.b", "public.c"}
    # a write on the target, a truncate (new file) or a table created again: not undeleted
    for side, table, at, value in (("target", "public.a", 2, 6), ("origin", "public.a", 1, 99), ("origin", "public.a", 0, 77)):
        origin_changed, target_changed = copy.deepcopy(origin_now), copy.deepcopy(target_now)
        (origin_changed if side == "origin" else target_changed)["tables"][table][at] = value
        _unchanged, undeleted, _untouched, _why = table_changes(kept(), side_signatures(origin_changed, True),
                                                                side_signatures(target_changed, True))
        assert undeleted == {"public.b"}, (side, at)
    # no proof on a side: nothing either way
    busy = reading(quiet_at=None)
    assert table_changes(kept(), side_signatures(origin_now, True), side_signatures(busy, True))[:3] == (set(), set(), set())


def test_the_targets_side_alone_proves_its_tables_untouched_when_the_origins_proves_nothing():
    """The buckets of a pass (pgsync) need the target's proof alone: a table the target did not change
    since its record is untouched even when the origin's statistics lost messages or cannot be read."""
    target_now = reading()
    target_now["tables"]["public.c"][4] = 8  # a delete on the target
    for origin_now in (side_signatures(legacy(drops=5), True), side_signatures(reading(quiet_at=None), True), None):
        unchanged, undeleted, untouched, why = table_changes(kept(), origin_now, side_signatures(target_now, True))
        assert (unchanged, undeleted, untouched) == (set(), set(), {"public.a", "public.b"})
        assert why and "origin" in why
    # and nothing is untouched when the target's own side proves nothing (a restart there)
    restarted = reading(epoch=["2026-01-02", None, None, "150008", "on"])
    assert table_changes(kept(), side_signatures(legacy(), True), side_signatures(restarted, True))[2] == set()


def test_a_truncate_or_a_rewrite_is_seen_through_the_relfilenode():
    origin_now = legacy()
    origin_now["tables"]["public.b"][1] = 99  # TRUNCATE: same counters, new file
    skipped, _why = unchanged_tables(kept(), side_signatures(origin_now, True), side_signatures(reading(), True))
    assert "public.b" not in skipped and skipped == {"public.a", "public.c"}


def test_a_table_recreated_new_or_gone_is_listed():
    origin_now, target_now = legacy(), reading()
    origin_now["tables"]["public.a"][0] = 77  # dropped and created again (new oid)
    origin_now["tables"]["public.new"] = [80, 80, 0, 0, 0]  # no signature kept: listed
    del target_now["tables"]["public.c"]  # gone on the target: listed (and the schemas differ anyway)
    skipped, _why = unchanged_tables(kept(), side_signatures(origin_now, True), side_signatures(target_now, True))
    assert skipped == {"public.b"}


def test_no_table_is_skipped_without_a_record_or_a_usable_one():
    now = (side_signatures(legacy(), True), side_signatures(reading(), True))
    assert unchanged_tables(None, *now) == (set(), "the last pass left no statistics of the origin")
    assert unchanged_tables(dict(origin=kept()["origin"]), *now)[1] == "the last pass left no statistics of the target"
    # the target's record was read while a session was still connected there: it proves nothing
    busy = kept(target=reading(quiet_at=None))
    assert unchanged_tables(busy, *now) == (set(), "the last pass's statistics of the target prove nothing "
                                                   "(other sessions were connected to the database)")


def test_a_restart_a_reset_or_a_crash_on_either_side_means_every_table_is_listed():
    cases = [(0, "origin", "the server was restarted"), (1, "origin", "the database's statistics were reset"),
             (2, "target", "the statistics were reset (a crash or pg_stat_reset_shared)"),
             (1, "target", "the database's statistics were reset")]
    for index, side, words in cases:
        origin_now, target_now = legacy(), reading()
        changed = origin_now if side == "origin" else target_now
        changed["epoch"] = list(changed["epoch"])
        changed["epoch"][index] = "2026-11-30 02:00:00+00"
        skipped, why = unchanged_tables(kept(), side_signatures(origin_now, True), side_signatures(target_now, True))
        assert skipped == set() and why == "on the %s, %s since the last pass" % (side, words)


def test_a_busy_database_now_proves_nothing():
    skipped, why = unchanged_tables(kept(), side_signatures(legacy(quiet_at=None), True), side_signatures(reading(), True))
    assert skipped == set() and why == "the origin's statistics prove nothing now (other sessions were connected to the database)"
    skipped, why = unchanged_tables(kept(), side_signatures(legacy(), True), side_signatures(reading(quiet_at=None), True))
    assert skipped == set() and why.startswith("the target's statistics prove nothing now")


def test_before_15_a_stale_file_lost_messages_or_an_unreadable_socket_prove_nothing():
    # the statistics file was written before the database became quiet (+ the margin): counts may be missing
    stale = legacy(quiet_at=100.0, stats_at=100.05)
    _skipped, why = unchanged_tables(kept(), side_signatures(stale, True), side_signatures(reading(), True))
    assert why == "the origin's statistics prove nothing now (its statistics file was not written after the database became quiet)"
    # a datagram dropped since the mark: a count may be missing
    _skipped, why = unchanged_tables(kept(), side_signatures(legacy(drops=1), True), side_signatures(reading(), True))
    assert why == ("on the origin, the statistics collector lost messages or restarted since the last pass "
                   "(socket 9229346 lost 0 message(s), then socket 9229346 lost 1 message(s))")
    # pg_read_file refused (not a superuser): the losses cannot be known
    unreadable = dict(legacy(), udp=None)
    _skipped, why = unchanged_tables(kept(), side_signatures(unreadable, True), side_signatures(reading(), True))
    assert why.endswith("(its statistics socket could not be read (pg_read_file of /proc/net/udp))")
    # ... nor when the mark could not read it
    _skipped, why = unchanged_tables(kept(origin=dict(legacy(quiet_at=None), udp=None)),
                                     side_signatures(legacy(), True), side_signatures(reading(), True))
    assert why.startswith("the last pass's statistics of the origin prove nothing")


def test_the_mark_needs_no_quiet_database_the_check_does():
    busy = legacy(quiet_at=None)
    assert side_signatures(busy, False)["proof"] is None  # a mark: read before the snapshot, counts may lag
    assert side_signatures(busy, True)["proof"] == "other sessions were connected to the database"
    assert side_signatures(dict(reading(), epoch=reading()["epoch"][:4] + ["off"]), False)["proof"] == "track_counts is off"


def test_the_check_waits_for_a_quiet_database_and_before_15_for_a_fresh_file():
    check_13 = signature_sql(True, True, True)
    assert check_13.startswith("DO $bm$ DECLARE quiet timestamptz; BEGIN FOR i IN 1..")
    assert "application_name IS DISTINCT FROM '%s'" % APP_NAME in check_13  # the module's own sessions only read
    assert "pg_stat_get_snapshot_timestamp() >= quiet + interval '100 ms'" in check_13
    assert "pg_read_file('/proc/net/udp')" in check_13
    # the order in the transaction: quiet first, then the fresh file, then the socket, then the counters
    positions = [check_13.index(part) for part in ("pg_stat_activity", "pg_stat_get_snapshot_timestamp() >=",
                                                   "pg_read_file", "pg_stat_get_tuples_inserted")]
    assert positions == sorted(positions)
    check_15 = signature_sql(True, False, False)
    assert "application_name" not in check_15  # on the target the pass's own writes must be counted first
    assert "pg_read_file" not in check_15 and "interval '100 ms'" not in check_15
    mark = signature_sql(False, True, True)
    assert "pg_stat_activity" not in mark and "pg_read_file" in mark


def test_signatures_are_compared_as_read_not_mutated():
    last = kept()
    before = copy.deepcopy(last)
    unchanged_tables(last, side_signatures(legacy(), True), side_signatures(reading(), True))
    assert last == before


def test_the_tables_unwritten_between_a_reading_and_a_check_are_those_whose_signatures_did_not_move():
    mark = side_signatures(reading(quiet_at=None), check=False)
    written = reading(tables={"public.a": [10, 10, 6, 1, 0], "public.b": [11, 11, 0, 0, 0], "public.c": [12, 13, 7, 7, 7]})
    assert unwritten_tables("target", mark, side_signatures(written, check=True)) == {"public.b"}
    assert unwritten_tables("target", mark, side_signatures(reading(), check=True)) == {"public.a", "public.b", "public.c"}
    # no proof: a check with another session connected, a restart between them, or a reading missing
    assert unwritten_tables("target", mark, side_signatures(reading(quiet_at=None), check=True)) == set()
    restarted = reading(epoch=["2026-12-01 00:00:00+00", None, "2026-11-29 18:10:48+00", "150008", "on"])
    assert unwritten_tables("target", mark, side_signatures(restarted, check=True)) == set()
    assert unwritten_tables("target", None, side_signatures(reading(), check=True)) == set()
    assert unwritten_tables("target", mark, None) == set()


def test_the_tables_written_between_two_readings_are_those_whose_signatures_moved():
    from ansible_collections.bluemind.migration.plugins.module_utils.pgsignature import written_tables
    before = side_signatures(reading(quiet_at=None), False)
    tables = dict(before["tables"], **{"public.a": [10, 10, 6, 1, 0], "public.d": [13, 13, 1, 0, 0]})
    after = side_signatures(reading(quiet_at=None, tables=tables), False)
    assert written_tables(before, after) == {"public.a", "public.d"}  # a written, d new; b and c as they were
    assert written_tables(before, before) == set()
    # the counters started again (a restart): every table may have been written
    restarted = side_signatures(reading(quiet_at=None, epoch=["2026-12-01 00:00:00+00", None, "x", "150008", "on"]), False)
    assert written_tables(before, restarted) == {"public.a", "public.b", "public.c"}
    assert written_tables(None, after) is None and written_tables(before, None) is None


def test_the_rows_written_between_two_readings_are_the_counters_growth():
    from ansible_collections.bluemind.migration.plugins.module_utils.pgsignature import written_rows
    before = side_signatures(reading(quiet_at=None), False)  # a: 5+1+0, b: 0, c: 7+7+7
    tables = dict(before["tables"], **{"public.a": [10, 99, 8, 1, 2],  # 5 more (a TRUNCATE keeps the counters)
                                       "public.c": [40, 40, 1, 0, 0],  # dropped and created again: its own 1
                                       "public.d": [13, 13, 3, 0, 0]})  # new: 3
    after = side_signatures(reading(quiet_at=None, tables=tables), False)
    assert written_rows(before, after) == 5 + 1 + 3
    restarted = side_signatures(reading(quiet_at=None, tables=tables, epoch=["x", None, "y", "150008", "on"]), False)
    assert written_rows(before, restarted) == 11 + 0 + 1 + 3
    assert written_rows(None, after) is None
