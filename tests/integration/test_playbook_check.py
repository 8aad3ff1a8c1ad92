"""`ansible-playbook playbooks/migrate.yml --check` on the lab changes nothing on either host."""
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labpaths import LAB_INVENTORY as INVENTORY, TOP, VENV_BIN  # noqa: E402

TREES = "var/spool/cyrus var/lib/cyrus var/spool/bm-hsm var/spool/sieve var/spool/bm-elasticsearch " \
        "var/spool/bm-docs var/spool/bm-filehosting"
# `ls -l`, not -a: the parent's time moves when Ansible makes its own ~/.ansible on the host.
SNAPSHOT = [
    "bmctl status", "systemctl is-active postfix", "cat /root/.ssh/authorized_keys 2>/dev/null",
    "ls -l /root/.ssh", "ls -la /var/lib/bluemind-migration /var/backups/bluemind-migration 2>&1",
    "cd / && find %s etc/bm etc/postfix -printf '%%p %%s %%T@ %%u %%g %%m\\n' | sort | md5sum" % TREES,
    "runuser -u postgres -- psql -X -At -c 'SELECT datname FROM pg_database ORDER BY 1'",
]


def snapshot(host):
    return {cmd: host.run(cmd, check=False).stdout for cmd in SNAPSHOT}


def test_check_mode_changes_nothing(lab, collections_path):
    before = {h.role: snapshot(h) for h in (lab.origin, lab.target)}
    env = dict(os.environ, ANSIBLE_CONFIG=str(TOP / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections_path)
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), str(TOP / "playbooks/migrate.yml"), "--check",
         "--diff"],
        capture_output=True, text=True, env=env, cwd=str(TOP), timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    after = {h.role: snapshot(h) for h in (lab.origin, lab.target)}
    assert after == before
