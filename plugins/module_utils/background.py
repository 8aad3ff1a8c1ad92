# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Work a job does in the background while it waits at its gate (see gate.py): threads that each run
processes (psql reading the target's listings ahead, ssh walking the origin's trees), which the gate's
opening stops. A process that starts once they were stopped is killed at once."""

from __future__ import annotations

import threading


class Background(object):
    """Threads running processes; :meth:`join` returns once they all ended, :meth:`stop` kills the
    processes still running, then joins."""

    def __init__(self):
        self.running = []
        self.stopped = False
        self.lock = threading.Lock()
        self.threads = []

    def start(self, target, args_of_each):
        """One daemon thread running ``target(*args)`` for each of ``args_of_each``."""
        self.threads = [threading.Thread(target=target, args=args, daemon=True) for args in args_of_each]
        for thread in self.threads:
            thread.start()

    def started(self, proc):
        """Keep ``proc`` (a Popen) to be stopped, or kill it now when the work was stopped already."""
        with self.lock:
            self.running.append(proc)
            if self.stopped:
                proc.kill()

    def join(self):
        """Return once every thread ended."""
        for thread in self.threads:
            thread.join()

    def stop(self):
        """Kill the processes still running and wait for the threads."""
        with self.lock:
            self.stopped = True
            for proc in self.running:
                if proc.poll() is None:
                    proc.kill()
        self.join()
