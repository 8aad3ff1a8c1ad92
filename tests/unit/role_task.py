"""Run one task of a role's task file for real, with ansible-playbook on localhost and given variables,
and return its result: for the unit tests of the checks that are Jinja in a role."""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[2]


def run_role_task(tmp_path, task_file, task_name, variables):
    """The result of the task named ``task_name`` of ``task_file`` (relative to the checkout)."""
    tasks = yaml.safe_load((TOP / task_file).read_text())
    task = next(t for t in tasks if t["name"] == task_name)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task], "vars": variables}]
    path = tmp_path / "play.json"
    path.write_text(json.dumps(play))
    config = tmp_path / "ansible.cfg"  # not the checkout's: its profiling callback would print
    # the collection as the unit tests import it (conftest's symlink), for the roles' own filters
    root = next(entry for entry in sys.path if (Path(entry) / "ansible_collections" / "bluemind" / "migration").is_dir())
    config.write_text("[defaults]\ncollections_path = %s\n" % root)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(config))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           str(path)], capture_output=True, text=True, env=env, timeout=120, check=False)
    try:
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("ansible-playbook gave no result (exit %d): %s %s" % (
            proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
