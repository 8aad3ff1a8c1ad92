"""The configuration copy's commands and what they print."""

import os
import shutil
import subprocess

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import confcopy


def test_existing_paths_command_leaves_the_wildcards_to_the_origins_shell():
    command = confcopy.existing_paths_command(["/etc/postfix/*-flat", "/etc/imapd*"])
    assert command == 'for f in /etc/postfix/*-flat /etc/imapd*; do [ -e "$f" ] && echo "${f#/}"; done; true'


@pytest.mark.parametrize("pattern", ["etc/bm", "/etc/$(reboot)", "/etc/a b", "/etc/x;true", "/etc/{a,b}", "~/x"])
def test_a_pattern_with_more_than_wildcards_is_refused(pattern):
    with pytest.raises(ValueError, match="absolute path with the wildcards"):
        confcopy.existing_paths_command(["/etc/bm", pattern])


def test_files_list_is_relative_to_root_each_path_once():
    assert confcopy.files_list(["etc/bm/", "/etc/postfix/main.cf"], ["etc/postfix/main.cf", "etc/imapd.conf"]) == \
        "etc/bm/\netc/postfix/main.cf\netc/imapd.conf\n"


def test_copy_command_backs_up_and_never_copies_hash_maps():
    argv = confcopy.copy_command("rsync", "ssh -i k", "root@o", "/var/backups/x/20261130T000000Z", dry_run=True)
    assert argv[:5] == ["rsync", "-aR", "--recursive", "--checksum", "--itemize-changes"]
    assert "--files-from=-" in argv and "--exclude=*.db" in argv and "--backup" in argv
    assert "--backup-dir=/var/backups/x/20261130T000000Z" in argv and "--dry-run" in argv
    assert argv[-2:] == ["root@o:/", "/"] and argv[argv.index("-e") + 1] == "ssh -i k"
    assert "--dry-run" not in confcopy.copy_command("rsync", "ssh", "root@o", "/b")


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (make test installs it)")
def test_the_copy_replaces_a_target_file_of_the_same_size_and_time_to_the_second(tmp_path):
    """The target's own certificate, made at its install: the origin's size, and its modification time to
    the second. rsync's quick check would keep it; the copy's options compare contents. Real rsync, with
    the copy's options, between two local folders."""
    origin, target = tmp_path / "origin", tmp_path / "target"
    for side, content, nanoseconds in ((origin, "ORIGIN-KEY\n", 120000000), (target, "TARGET-KEY\n", 870000000)):
        (side / "etc/ssl/certs").mkdir(parents=True)
        (side / "etc/ssl/certs/bm_cert.pem").write_text(content)
        stamp = 1764547200 * 10 ** 9 + nanoseconds  # the same second, not the same instant
        os.utime(side / "etc/ssl/certs/bm_cert.pem", ns=(stamp, stamp))
    argv = confcopy.copy_command("rsync", "unused", "o", str(tmp_path / "backup"))
    options = [arg for arg in argv[1:-2] if arg not in ("-e", "unused")]
    quick = [arg for arg in options if arg != "--checksum"]
    subprocess.run(["rsync"] + quick + ["%s/" % origin, "%s/" % target], input=b"etc/ssl/certs/bm_cert.pem\n", check=True)
    assert (target / "etc/ssl/certs/bm_cert.pem").read_text() == "TARGET-KEY\n"  # what the quick check alone did
    done = subprocess.run(["rsync"] + options + ["%s/" % origin, "%s/" % target], input=b"etc/ssl/certs/bm_cert.pem\n",
                          check=True, stdout=subprocess.PIPE)
    assert (target / "etc/ssl/certs/bm_cert.pem").read_text() == "ORIGIN-KEY\n"
    assert (tmp_path / "backup/etc/ssl/certs/bm_cert.pem").read_text() == "TARGET-KEY\n"
    assert confcopy.copied(done.stdout.decode().splitlines()) == [">fc........ etc/ssl/certs/bm_cert.pem"]


def test_queue_command_moves_the_five_queues_in_one_run():
    argv = confcopy.queue_command("rsync", "ssh", "root@o")
    assert argv[-6:] == ["root@o:/var/spool/postfix/./maildrop/", "root@o:/var/spool/postfix/./incoming/",
                         "root@o:/var/spool/postfix/./active/", "root@o:/var/spool/postfix/./deferred/",
                         "root@o:/var/spool/postfix/./hold/", "/var/spool/postfix/"]
    assert "-aR" in argv and "--delete" not in argv


def test_copied_leaves_out_directories_whose_time_alone_changed():
    lines = [".d..t...... etc/bm/", ">f.st...... etc/bm/bm.ini", "", "cd+++++++++ etc/bm-hps/", ">f+++++++++ hold/AB12"]
    assert confcopy.copied(lines) == [">f.st...... etc/bm/bm.ini", "cd+++++++++ etc/bm-hps/", ">f+++++++++ hold/AB12"]
    assert confcopy.moved_mail(confcopy.copied(lines)) == [">f.st...... etc/bm/bm.ini", ">f+++++++++ hold/AB12"]


def test_postmap_commands_build_beside_then_replace_the_map_postfix_reads():
    assert confcopy.postmap_commands("/usr/sbin/postmap", ["transport"], "/etc/postfix") == [
        (["/usr/sbin/postmap", "hash:/etc/postfix/transport-flat"], "/etc/postfix/transport-flat.db", "/etc/postfix/transport.db")]
