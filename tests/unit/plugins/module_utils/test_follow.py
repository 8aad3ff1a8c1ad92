"""The follower of the origin's changes (follow.py): its script run here as it runs on the origin (this
machine's python3 and inotify, without the SSH in front), the walk before the stop as the module runs it
(find, locally), and the merge of both that replaces the window's walk."""
import io
import os
import sys
import time

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import follow
from ansible_collections.bluemind.migration.plugins.module_utils.rsync import (
    ExcludeFilter, changed_entries_command, just_before_ns)


def local(command):
    return ["sh", "-c", command]


def start(trees, since):
    script = follow.follower_command(trees, just_before_ns(since)).replace("python3", sys.executable, 1)
    follower = follow.Follower(local(script), trees)
    assert follower.wait_ready(20), follower.reason
    return follower


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "spool"
    for name in ("user/a", "user/b", "user/c/sub"):
        (root / name).mkdir(parents=True)
    (root / "user/a/1.").write_text("one")
    (root / "user/b/index").write_text("index")
    (root / "user/b/old").write_text("old")
    return str(root)


def write(path, text, mode="w"):
    with open(path, mode) as handle:
        handle.write(text)


def test_the_follower_reports_what_changed_after_its_watches_were_set(tree):
    follower = start([tree], time.time() - 60)
    assert follower.watches == 6  # the tree and its five directories
    write(tree + "/user/a/2.", "two")                   # a new file: its directory
    write(tree + "/user/b/index", "more", "a")          # a file written in place: the file
    os.unlink(tree + "/user/b/old")                     # a removal: its directory, the name gone
    os.makedirs(tree + "/user/new/deep")                # a new directory (and one made in it before its watch)
    write(tree + "/user/new/deep/3.", "three")          # a file in it, after its watch
    os.link(tree + "/user/a/2.", tree + "/user/c/sub/2.")  # a name linked to a file it saw created
    found = follower.report(10)
    assert isinstance(found, dict), found
    dirs, others, links, unseen = found[tree].merged()
    # the new directory comes with its parent (pulled whole: the target does not have it); what was made
    # in it after its watch was set may come on its own too
    assert {b"user/a", b"user/b", b"user", b"user/c/sub"} <= dirs <= {
        b"user/a", b"user/b", b"user", b"user/c/sub", b"user/new", b"user/new/deep"}
    assert {b"user/b/index", b"user/a/2."} <= others <= {b"user/b/index", b"user/a/2.", b"user/new/deep/3."}
    assert found[tree].gone == {b"user/b/old"}
    assert list(links.values()) == [[b"user/a/2.", b"user/c/sub/2."]] and unseen == []
    assert found[tree].root is False
    assert follower.proc.poll() == 0


def test_a_file_written_in_place_is_reported_only_when_its_status_changed_since(tree):
    """A file opened for writing and closed unchanged (a Cyrus index opened read-write) is not pulled
    again: its status is older than changed_since, as the walk would say."""
    since = time.time() + 5
    follower = start([tree], since)
    with open(tree + "/user/b/index", "r+"):
        pass
    found = follower.report(10)
    assert found[tree].seen_files == set()


def test_the_follower_gives_up_on_a_renamed_directory_and_on_a_link_to_a_file_it_did_not_see(tree):
    follower = start([tree], time.time() - 60)
    os.rename(tree + "/user/c", tree + "/user/d")
    assert "renamed" in follower.report(10)

    follower = start([tree], time.time() - 60)
    os.link(tree + "/user/a/1.", tree + "/user/b/copy")  # an IMAP COPY of an older message
    found = follower.report(10)
    unseen = found[tree].merged()[3]
    assert len(unseen) == 1


def test_the_follower_gives_up_without_its_tree_or_without_python(tree, tmp_path):
    missing = str(tmp_path / "none")
    script = follow.follower_command([missing], 0).replace("python3", sys.executable, 1)
    gone = follow.Follower(local(script), [missing])
    assert gone.wait_ready(20) is False and "none" in gone.reason
    assert isinstance(gone.report(5), str)
    absent = follow.Follower(local("exec no-such-python -c x"), [tree])
    assert absent.wait_ready(20) is False
    assert "rc 127" in absent.report(5)


def test_the_walk_before_the_stop_and_the_follower_together(tree):
    """What the walk listed before the follower's report is merged with it: a name the walk listed and
    that is gone since is not pulled, a link the walk listed of which a name was replaced is not made."""
    time.sleep(0.05)
    since = time.time()  # after the tree was made: its top is not listed
    write(tree + "/user/a/5.", "five")
    os.link(tree + "/user/a/5.", tree + "/user/b/5.")
    write(tree + "/user/a/6.", "six")  # one link when the walk lists it
    follower = start([tree], since)
    walk = follow.ChangesBeforeStop(follower, {tree: follow.walk_into(local(changed_entries_command(tree, since)))}, 1)
    walk.join()
    assert walk.done == {tree: None}
    os.unlink(tree + "/user/b/5.")
    write(tree + "/user/b/5.", "another")             # the name now another file
    os.unlink(tree + "/user/a/1.")                     # an older file removed: its directory
    os.link(tree + "/user/a/6.", tree + "/user/c/6.")  # a name linked to a file the walk listed
    found = walk.changes(10)[tree]
    dirs, others, links, root = found
    assert {b"user/a", b"user/b"} <= dirs
    assert b"user/a/5." in others and b"user/b/5." in others
    # b/5. is not linked to a/5. any more; c/6. is linked to a/6., which the walk listed (not a name unseen)
    assert [names for names in links.values() if len(names) > 1] == [[b"user/a/6.", b"user/c/6."]]
    assert root is False
    names = io.BytesIO()
    listed = []
    count = follow.replay(found, names, ExcludeFilter(["*/5."]), {}, listed.append)
    assert b"user/a/5." not in names.getvalue().split(b"\0")
    assert listed == sorted(d for d in dirs) and count[0] == len(dirs)


def test_a_walk_stopped_at_the_gate_leaves_its_tree_to_the_window(tree):
    follower = start([tree], time.time())
    walk = follow.ChangesBeforeStop(follower, {tree: follow.walk_into(local("exec sleep 30"))}, 1)
    time.sleep(0.5)
    found = walk.changes(10)
    assert found == {tree: "the walk before the stop did not end before it"}


def test_a_file_made_in_a_new_directory_before_its_watch_is_a_name_the_follower_saw(tree):
    """A message delivered to a new mailbox, then linked into another (Cyrus's single-instance store): the
    file was made in the new directory before the follower's watch on it was set, yet it is a name the
    follower knows (the new directory's entries are read once watched), so the link is not to a name unseen.
    Several times: whether the file comes before the watch is a race (the lab lost it one run in three)."""
    follower = start([tree], time.time() - 60)
    for number in range(10):
        os.makedirs(tree + "/user/new%d/sub" % number)
        write(tree + "/user/new%d/sub/1." % number, "one")
        os.link(tree + "/user/new%d/sub/1." % number, tree + "/user/a/%d." % (number + 10))
    found = follower.report(10)
    assert isinstance(found, dict), found
    _dirs, _others, links, unseen = found[tree].merged()
    assert unseen == []
    assert sorted(sorted(names) for names in links.values()) == [
        sorted([b"user/a/%d." % (number + 10), b"user/new%d/sub/1." % number]) for number in range(10)]
