"""Each role's defaults and argument spec hold the same keys, documented, typed, secrets hidden."""
from pathlib import Path

import pytest
import yaml

ROLES = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())
SECRETS = ("password", "token")
TYPES = {bool: "bool", int: "int", list: "list", str: "str", dict: "dict"}


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
