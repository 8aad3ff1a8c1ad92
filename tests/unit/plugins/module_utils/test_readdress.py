"""readdress: bm.ini, core_sync_host, the server and webmail SQL and the backup spool rename."""

from ansible_collections.bluemind.migration.plugins.module_utils import readdress

OLD = ["192.0.2.10", "198.51.100.7"]
NEW = "192.0.2.20"


def test_core_sync_host_of_an_old_address_is_rewritten_the_rest_kept():
    text = "# replication\ncore_sync_host: 192.0.2.10\ncore_sync_port: 8090\n  core_sync_host:198.51.100.7  \n"
    new_text, replaced = readdress.rewrite_core_sync_host(text, OLD, NEW)
    assert new_text == "# replication\ncore_sync_host: 192.0.2.20\ncore_sync_port: 8090\n  core_sync_host:192.0.2.20  \n"
    assert replaced == ["192.0.2.10", "198.51.100.7"]


def test_core_sync_host_of_another_server_is_left():
    text = "core_sync_host: 192.0.2.99\n"
    assert readdress.rewrite_core_sync_host(text, OLD, NEW) == (text, [])
    # a prefix of an old address is not that address
    assert readdress.rewrite_core_sync_host("core_sync_host: 192.0.2.100\n", OLD, NEW)[1] == []


def test_bm_ini_host_and_member_address_of_an_old_address_are_rewritten_quotes_kept():
    text = ('[global]\nhost = 192.0.2.10\nhz-member-address="198.51.100.7"\nexternal-url = 192.0.2.10\n'
            'host = 192.0.2.99\nhostname = 192.0.2.10\n')
    new_text, replaced = readdress.rewrite_bm_ini(text, OLD, NEW)
    # external-url, another server's address and a key that only starts like host= are left
    assert new_text == ('[global]\nhost = 192.0.2.20\nhz-member-address="192.0.2.20"\nexternal-url = 192.0.2.10\n'
                        'host = 192.0.2.99\nhostname = 192.0.2.10\n')
    assert replaced == ["192.0.2.10", "198.51.100.7"]
    assert readdress.rewrite_bm_ini(new_text, OLD, NEW) == (new_text, [])


def test_server_sql_updates_each_systemconf_row_once_and_quotes():
    sql = readdress.server_update_sql(["192.0.2.10", "x'y"], NEW)
    assert sql.count("UPDATE t_systemconf") == 1 and sql.count("UPDATE t_server SET ip = '192.0.2.20'") == 1
    assert "IN ('192.0.2.10', 'x''y')" in sql and "hstore('hz-member-address', '192.0.2.20')" in sql
    count = readdress.server_count_sql(["192.0.2.10"])
    assert "FROM t_server WHERE ip IN ('192.0.2.10')" in count and "'hz-member-address'" in count


def test_webmail_sql_moves_only_profiles_without_one_on_the_new_host_and_quotes():
    sql = readdress.webmail_update_sql(["192.0.2.10", "x'y"], NEW)
    assert "SET mail_host = '192.0.2.20'" in sql and "IN ('192.0.2.10', 'x''y')" in sql
    assert "NOT EXISTS" in sql and sql.endswith("RETURNING u.username")


def test_spool_renamed_when_only_one_old_folder(tmp_path):
    (tmp_path / "192.0.2.10").mkdir()
    assert readdress.spool_rename(str(tmp_path), OLD, NEW) == (
        (str(tmp_path / "192.0.2.10"), str(tmp_path / "192.0.2.20")), None)


def test_spool_left_when_the_new_one_exists_or_several_old(tmp_path):
    assert readdress.spool_rename(str(tmp_path), OLD, NEW) == (None, None)
    (tmp_path / "192.0.2.10").mkdir()
    (tmp_path / "192.0.2.20").mkdir()
    rename, reason = readdress.spool_rename(str(tmp_path), OLD, NEW)
    assert rename is None and "merge them by hand" in reason
    (tmp_path / "192.0.2.20").rmdir()
    (tmp_path / "198.51.100.7").mkdir()
    rename, reason = readdress.spool_rename(str(tmp_path), OLD, NEW)
    assert rename is None and "several backup spools" in reason
