# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A gate on the target: a job started ahead of a step waits at it until the play opens it.

Starting a job in the background costs Ansible about a second (an async task is not pipelined: a
temporary folder, the module copied, the wrapper started). A job that must not begin before the
origin's stop (the window's database pass) is therefore started before the stop, does what does not
depend on the origin's data (its connections, the servers' versions), and waits at the gate: a file
that the play writes once the stop succeeded, holding a token that this run made. A gate left by an
earlier run holds another token and opens nothing; a gate never opened (the stop failed, the
controller died) ends the job after its timeout, having read and written nothing, or as soon as a later
run opens the gate with its own token (that run's jobs are the ones that go on).

What a job can do before the gate without reading what it copies (the target's side of the database
pass's listings, a walk of the origin's trees that leaves their inodes in its caches) still costs the
window whatever is left of it when the gate opens: such a job says when that work ended (see
jobs.ready_when), and the play waits for it, a bounded time, before the stop.
"""

from __future__ import annotations

import errno
import time

# How often the gate is looked at: the job waits a twentieth of a second at most once it is open.
PERIOD = 0.05


def gate_argument_spec():
    """Options documented by the ``bluemind.migration.gate`` fragment."""
    return dict(gate_path=dict(type="path"), gate_token=dict(type="str", no_log=False),
                gate_timeout=dict(type="int", default=1800))


class GateClosed(Exception):
    """The gate was not opened with this run's token before the timeout."""


def read_token(path):
    """The token the gate at ``path`` holds, or None when there is no gate."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def wait(path, token, timeout, what, sleep=time.sleep, clock=time.monotonic):
    """Returns the seconds waited once the gate at ``path`` holds ``token``; raises GateClosed after
    ``timeout`` seconds (``what`` names what opens it, in the message), or once the gate holds a token
    that it did not hold when the wait began and that is not ``token`` (another run's stop)."""
    if not token:
        raise ValueError("a gate needs a token")
    started = clock()
    found_first = found = read_token(path)
    while found != token:
        # An empty gate is one being written (a shell's '>' makes it before it writes): no token yet.
        if found and found != found_first:
            # a later run's stop: the run that started this job will not open it
            raise GateClosed("another run opened the gate %s (its token is not this run's): the run that started "
                             "this job stopped before the origin's stop, and nothing was copied or written by it"
                             % path)
        if clock() - started >= timeout:
            raise GateClosed("%s did not happen within %d s (the gate %s was not opened with this run's token): "
                             "nothing was copied or written. The run that started this job stopped before it; run "
                             "it again" % (what, timeout, path))
        sleep(PERIOD)
        found = read_token(path)
    return round(clock() - started, 2)
