"""Each role's defaults and argument spec hold the same keys, documented, typed, secrets hidden."""
import sys
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (TOP / "roles").iterdir() if p.is_dir())
SECRETS = ("password", "token")
TYPES = {bool: "bool", int: "int", list: "list", str: "str", dict: "dict", float: "float"}


def load(role, path):
    return yaml.safe_load((Path(__file__).resolve().parents[2] / "roles" / role / path).read_text()) or {}


def test_every_phase_is_there():
    assert set(ROLES) >= {"bluemind", "prereq", "hot_sync", "cold_sync", "db_migrate", "config_copy", "cutover"}


@pytest.mark.parametrize("role", ROLES)
def test_defaults_match_argument_spec(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert name.startswith(role + "_"), f"{name}: role variables carry the role's prefix"
        spec = options[name]
        assert spec["default"] == value, name
        assert spec["type"] == TYPES[type(value)], name
        assert len(spec["description"]) > 15, f"{name}: describe it"
        if any(word in name for word in SECRETS):
            assert spec.get("no_log") is True, f"{name} is a secret: no_log"


def test_readme_lists_every_role_variable():
    sys.path.insert(0, str(TOP / "scripts"))
    import role_vars_table

    readme = (TOP / "README.md").read_text()
    section = readme.split(role_vars_table.BEGIN, 1)[1].split(role_vars_table.END, 1)[0]
    assert section.strip() == role_vars_table.table().strip(), "run scripts/role_vars_table.py into the README"
