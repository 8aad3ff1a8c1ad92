import os
from collections import namedtuple

from ansible_collections.bluemind.migration.plugins.module_utils import disk

StatVfs = namedtuple("StatVfs", "f_frsize f_bavail f_blocks")


def test_human_size():
    assert [disk.human_size(n) for n in (0, 1023, 1024, 8 * 1024 * 1024 - 1, 3 * 1024 ** 4, 5 * 1024 ** 5)] == [
        "0 bytes", "1023 bytes", "1.0 KiB", "8.0 MiB", "3.0 TiB", "5120.0 TiB"]


def test_mount_point_of_a_path_not_made_yet(tmp_path):
    made = disk.mount_point(str(tmp_path))
    assert os.path.ismount(made) and str(tmp_path).startswith(made)
    assert disk.mount_point(str(tmp_path / "not" / "yet")) == made
    assert disk.mount_point("/") == "/"


def test_free_space(tmp_path):
    seen = []

    def statvfs(path):
        seen.append(path)
        return StatVfs(4096, 2048, 8192)
    text = disk.free_space(str(tmp_path / "spool"), statvfs=statvfs)
    assert text == "filesystem %s, 8.0 MiB free of 32.0 MiB" % seen[0]

    def unreadable(path):
        raise PermissionError(13, "Permission denied")
    assert disk.free_space(str(tmp_path), statvfs=unreadable) == ""
