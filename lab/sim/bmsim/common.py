"""Shared helpers of the simulator: bm.ini, database connections, the call log, the version."""
import configparser
import json
import os
import subprocess
import tempfile
import time

BM_INI = os.environ.get("BMSIM_BM_INI", "/etc/bm/bm.ini")
LOG_DIR = os.environ.get("BMSIM_LOG_DIR", "/var/log/bm-sim")
STATE_DIR = os.environ.get("BMSIM_STATE_DIR", "/var/lib/bm-sim")
TOKEN_FILE = os.environ.get("BMSIM_TOKEN_FILE", "/etc/bm/bm-core.tok")
DEFAULT_VERSION = "4.9.3884"


def read_bm_ini(path=BM_INI):
    """Return the [global] section of bm.ini as a dict (quotes stripped, as BlueMind does)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    if not parser.has_section("global"):
        return {}
    return {k: v.strip().strip('"') for k, v in parser.items("global")}


def connect(dbname="bj"):
    """Open a psycopg2 connection to a BlueMind database with the credentials of bm.ini."""
    import psycopg2  # only inside the lab images (python3-psycopg2)

    ini = read_bm_ini()
    return psycopg2.connect(
        host=os.environ.get("BMSIM_DB_HOST", "127.0.0.1"),
        port=int(os.environ.get("BMSIM_DB_PORT", "5432")),
        user=ini.get("user", "bj"),
        password=ini.get("password", "bj"),
        dbname=dbname,
    )


def log_event(kind, **fields):
    """Append one JSON line to /var/log/bm-sim/<kind>.jsonl (the tests read these logs)."""
    os.makedirs(LOG_DIR, exist_ok=True)
    fields.setdefault("ts", time.time())
    with open(os.path.join(LOG_DIR, kind + ".jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(fields, sort_keys=True) + "\n")


def installed_version():
    """Version of the bm-core package, as `dpkg-query -W -f='${Version}' bm-core` reports it."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "bm-core"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        return out or DEFAULT_VERSION
    except (OSError, subprocess.CalledProcessError):
        return DEFAULT_VERSION


def upstream_version(package_version):
    """The upstream part of a Debian package version: no epoch, no revision after the last "-".
    BlueMind's packages are built per distribution (4.9.3884-bullseye, 4.9.3884-bookworm); its core
    reports the same softwareVersion on every distribution."""
    version = package_version.split(":", 1)[-1]
    return version.rsplit("-", 1)[0] if "-" in version else version


def major(version=None):
    """BlueMind's major version of this host (4 or 5), from the bm-core package (or `version`).
    BMSIM_BLUEMIND overrides it (tests of the simulator outside the images)."""
    forced = os.environ.get("BMSIM_BLUEMIND")
    if forced:
        return int(forced)
    try:
        return int(upstream_version(version or installed_version()).split(".")[0])
    except ValueError:
        return int(DEFAULT_VERSION.split(".")[0])


def read_token(path=TOKEN_FILE):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None


def write_atomic(path, text, mode=0o644):
    """Replace `path` with `text` in one step (temp file in the same directory + rename)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
