# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SSH from the target to the origin: pinned host key, dedicated key, optional multiplexing.

Used by the modules that pull from the origin (rsync's remote shell, the PostgreSQL tunnel).
The host key is only ever checked against the given known_hosts file: nothing is accepted blindly.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import tempfile
import time

SSH_FAILURE_HINTS = (
    ("Host key verification failed",
     "the origin's host key is not the one pinned in known_hosts: take it from the origin itself "
     "(the prereq role does) and never accept it blindly"),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED",
     "the origin's host key differs from the one pinned in known_hosts: check that origin_host "
     "is really the origin, then pin its current key"),
    ("Permission denied",
     "the origin refused the key: check that its public key is in root's authorized_keys on the "
     "origin (with a from= that allows the target)"),
    ("Connection refused", "nothing listens for SSH on the origin at ssh_port"),
    ("timed out", "the origin does not answer: check origin_host, ssh_port and the network"),
    ("Could not resolve hostname", "origin_host does not resolve on the target"),
    ("no matching cipher",
     "the origin's sshd does not accept ssh_cipher: set ssh_cipher to \"\" to use ssh's default ciphers"),
    ("Unknown cipher type",
     "ssh on the target does not know ssh_cipher (see ssh -Q cipher): set ssh_cipher to \"\" to use "
     "ssh's default ciphers"),
)


class SshError(Exception):
    """SSH to the origin failed; the message says why and what to do."""


def ssh_argument_spec():
    """Options documented by the ``bluemind.migration.ssh`` fragment."""
    return dict(
        origin_host=dict(type="str", required=True),
        origin_user=dict(type="str", default="root"),
        ssh_key=dict(type="path", required=True),
        known_hosts=dict(type="path", required=True),
        ssh_port=dict(type="int", default=22),
        ssh_connect_timeout=dict(type="int", default=15),
    )


def explain_ssh_failure(what, rc, stderr):
    """One message for a failed ssh: what was attempted, ssh's last words, and the likely fix."""
    text = (stderr or "").strip()
    hints = [hint for needle, hint in SSH_FAILURE_HINTS if needle in text]
    last = text.splitlines()[-1] if text else "no message"
    return "%s failed (ssh exit %s: %s)%s" % (what, rc, last, ": " + hints[0] if hints else "")


class OriginSsh(object):
    """How the target reaches the origin. ``control_path`` enables one multiplexed connection.

    A module with an ``ssh_cipher`` option (bulk transfers) gets ``-o Compression=no`` and, unless
    the option is empty, ``-c <cipher>``; the other modules keep ssh's own choices.
    """

    def __init__(self, ssh_bin, params, control_path=None, control_persist=60):
        self.ssh_bin = ssh_bin
        self.host = params["origin_host"]
        self.destination = "%s@%s" % (params["origin_user"], self.host)
        self.key = params["ssh_key"]
        self.known_hosts = params["known_hosts"]
        self.port = params["ssh_port"]
        self.connect_timeout = params["ssh_connect_timeout"]
        self.control_path = control_path
        self.control_persist = control_persist
        self.tune_transfer = "ssh_cipher" in params
        self.cipher = params.get("ssh_cipher") or None

    def check_files(self):
        """Fail early, with the path, when the key or the pinned known_hosts is not readable."""
        for label, path in (("ssh_key", self.key), ("known_hosts", self.known_hosts)):
            if not os.access(path, os.R_OK):
                raise SshError(
                    "%s %s is missing or unreadable on the target: the prereq role creates it" % (label, path)
                )

    def options(self, multiplex=True):
        opts = [
            "-i", self.key,
            "-p", str(self.port),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=%s" % self.known_hosts,
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=%d" % self.connect_timeout,
            "-o", "ServerAliveInterval=15",
        ]
        if self.tune_transfer:
            opts += ["-o", "Compression=no"]
            if self.cipher:
                opts += ["-c", self.cipher]
        if multiplex and self.control_path:
            opts += [
                "-o", "ControlMaster=auto",
                "-o", "ControlPath=%s" % self.control_path,
                "-o", "ControlPersist=%d" % self.control_persist,
            ]
        return opts

    def command(self, multiplex=True):
        """``ssh`` with its options, without the destination (what rsync's ``-e`` wants)."""
        return [self.ssh_bin] + self.options(multiplex)

    def shell(self):
        """The remote shell for rsync ``-e``, quoted the way rsync splits it."""
        return " ".join(shlex.quote(arg) for arg in self.command())

    def open_master(self, run_command):
        """Start the shared connection (and prove the key and host key) before any worker."""
        rc, _out, err = run_command(self.command() + [self.destination, "true"])
        if rc != 0:
            raise SshError(explain_ssh_failure("ssh to %s" % self.destination, rc, err))

    def remote(self, command, multiplex=True):
        """``ssh ... destination command``: ``command`` is run by the origin user's shell."""
        return self.command(multiplex) + [self.destination, command]

    def clock(self, run_command):
        """The origin's clock (seconds since the epoch, as a float), read over the connection."""
        return self.clock_and_directories(run_command, ())[0]

    def clock_and_directories(self, run_command, candidates):
        """``(the origin's clock, those of ``candidates`` that are directories there)``, in one remote
        command: the clock as :meth:`clock` reads it, the directories in the order given."""
        script = "date +%s.%N"
        if candidates:
            script += "; for d in %s; do [ -d \"$d\" ] && printf '%%s\\n' \"$d\"; done; true" % " ".join(
                shlex.quote(path) for path in candidates)
        rc, out, err = run_command(self.remote(script))
        if rc != 0:
            raise SshError(explain_ssh_failure("reading the clock of %s" % self.destination, rc, err))
        lines = out.splitlines() or [""]
        seconds, _sep, fraction = lines[0].strip().partition(".")
        if not seconds.lstrip("-").isdigit():
            raise SshError("reading the clock of %s: unexpected answer %r from date" % (self.destination, lines[0].strip()))
        wanted = set(candidates)
        present = [line for line in lines[1:] if line in wanted]
        # a date without %N prints it as is: keep the whole seconds
        return float(seconds + "." + fraction) if fraction.isdigit() else float(seconds), present

    def close_master(self, run_command):
        if self.control_path:
            # the port too: %C in the path hashes it, so without it another port's socket is asked
            run_command([self.ssh_bin, "-o", "ControlPath=%s" % self.control_path, "-p", str(self.port),
                         "-O", "exit", self.destination])

    def tunnel_command(self, local_port, remote_port):
        """``ssh -N -L``: the origin's ``127.0.0.1:remote_port`` on the target's ``127.0.0.1:local_port``."""
        return self.command(multiplex=False) + [
            "-N", "-o", "ExitOnForwardFailure=yes",
            "-L", "127.0.0.1:%d:127.0.0.1:%d" % (local_port, remote_port),
            self.destination,
        ]


def free_local_port():
    """A TCP port free on 127.0.0.1 right now."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


class Tunnel(object):
    """``ssh -N -L`` running for the duration of a ``with`` block; ``port`` is the local end."""

    def __init__(self, origin, local_port, remote_port, popen=subprocess.Popen):
        self.origin = origin
        self.port = local_port
        self.remote_port = remote_port
        self.popen = popen
        self.proc = None
        self.errors = None

    def __enter__(self):
        self.errors = tempfile.TemporaryFile()
        self.proc = self.popen(self.origin.tunnel_command(self.port, self.remote_port),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.errors)
        deadline = time.monotonic() + self.origin.connect_timeout + 5
        while not self._listening():
            rc = self.proc.poll()
            if rc is not None or time.monotonic() >= deadline:
                stderr = self._stderr()
                self.__exit__()
                what = "the tunnel to %s port %d" % (self.origin.destination, self.remote_port)
                raise SshError(explain_ssh_failure(what, "none, no listener in time" if rc is None else rc, stderr))
            time.sleep(0.2)
        return self

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except (IOError, OSError):
            return False

    def _stderr(self):
        self.errors.seek(0)
        return self.errors.read().decode("utf-8", "replace")

    def __exit__(self, *exc_info):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errors.close()
        return False
