# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The configuration copy's jobs: which of the origin's paths exist, the one rsync pass that copies
them (the target's previous copies backed up), the postfix maps rebuilt from their ``-flat``
sources, and the mail still queued on the origin moved into the target's queues."""

from __future__ import annotations

# rsync's itemized line of a directory whose time alone changed (nothing copied into it).
DIR_TIME_ONLY = ".d..t......"
# Postfix's queues that hold mail to deliver (``hold`` too: held mail stays held on the target).
POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
POSTFIX_SPOOL = "/var/spool/postfix"


def existing_paths_command(patterns):
    """A shell command, run on the origin, that prints each path matching ``patterns`` (shell
    patterns, absolute) that exists there, relative to ``/``, one a line."""
    for pattern in patterns:
        check_pattern(pattern)
    return 'for f in %s; do [ -e "$f" ] && echo "${f#/}"; done; true' % " ".join(patterns)


def check_pattern(text):
    """A pattern goes to the origin's shell unquoted (its wildcards expand there): raise ValueError
    when it holds anything else a shell would act on, or is not absolute."""
    if not text.startswith("/") or any(ch in text for ch in "\"'`$;&|<>(){}\\ \t\n#~"):
        raise ValueError("%r: a configuration pattern is an absolute path with the wildcards * ? [ ] only" % text)


def files_list(paths, found):
    """What the copy reads on stdin: ``paths`` then the patterns' ``found`` paths, relative to ``/``,
    each once, in that order."""
    seen, names = set(), []
    for name in list(paths) + list(found):
        name = name.lstrip("/")
        if name and name not in seen:
            seen.add(name)
            names.append(name)
    return "\n".join(names) + "\n"


def copy_command(rsync_bin, remote_shell, origin, backup_dir, dry_run=False):
    """rsync of the paths read on stdin from ``origin`` (``user@host``) into ``/``, folders recursively,
    the target's files it replaces kept under ``backup_dir``; postfix hash maps (``*.db``) are
    rebuilt, never copied.

    Compared by content (``--checksum``), not by rsync's quick check: the target's own files (its
    certificate and key, ``mcast.id``, made when it was installed) may have the origin's size and
    modification time to the second, and would then be kept. The configuration is a few megabytes."""
    return ([rsync_bin, "-aR", "--recursive", "--checksum", "--itemize-changes", "--files-from=-", "--exclude=*.db",
             "--backup", "--backup-dir=%s" % backup_dir, "-e", remote_shell]
            + (["--dry-run"] if dry_run else []) + ["%s:/" % origin, "/"])


def queue_command(rsync_bin, remote_shell, origin, dry_run=False, queues=POSTFIX_QUEUES):
    """rsync of the origin's postfix queues into the target's, in one run (files keep their names:
    ``postsuper -s`` renames them after the target's inodes)."""
    sources = ["%s:%s/./%s/" % (origin, POSTFIX_SPOOL, queue) for queue in queues]
    return ([rsync_bin, "-aR", "--itemize-changes", "-e", remote_shell] + (["--dry-run"] if dry_run else [])
            + sources + [POSTFIX_SPOOL + "/"])


def copied(itemized_lines):
    """The itemized lines of what a copy moved (not directories whose time alone changed)."""
    return [line for line in itemized_lines if line.strip() and not line.startswith(DIR_TIME_ONLY)]


def moved_mail(itemized_lines):
    """The itemized lines of the queue files a queue move copied."""
    return [line for line in itemized_lines if line.startswith(">f")]


def postmap_commands(postmap_bin, maps, folder="/etc/postfix"):
    """``(argv, built, map)`` for each map: ``postmap`` builds ``<map>-flat.db`` from the copied
    ``<map>-flat``, which then replaces ``<map>.db`` (the name postfix reads)."""
    return [([postmap_bin, "hash:%s/%s-flat" % (folder, name)], "%s/%s-flat.db" % (folder, name), "%s/%s.db" % (folder, name))
            for name in maps]
