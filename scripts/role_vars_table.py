"""Print the README's table of role variables from the roles' meta/argument_specs.yml.

The README holds its output between the markers below; tests/unit/test_roles.py checks they agree.
Usage: .venv/bin/python scripts/role_vars_table.py
"""
from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[1]
ROLES = ["bluemind", "prereq", "hot_sync", "cold_sync", "db_migrate", "config_copy", "cutover"]
BEGIN, END = "<!-- role variables: begin -->", "<!-- role variables: end -->"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def default(value):
    if value == "":
        return '`""`'
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return "(see defaults/main.yml)" if len(text) > 50 else "`%s`" % cell(text)


def table():
    rows = ["| variable | role | default | meaning |", "|---|---|---|---|"]
    for role in ROLES:
        spec = yaml.safe_load((TOP / "roles" / role / "meta/argument_specs.yml").read_text())
        for name, opt in spec["argument_specs"]["main"]["options"].items():
            rows.append("| `%s` | %s | %s | %s |" % (name, role, default(opt["default"]), cell(opt["description"])))
    return "\n".join(rows)


if __name__ == "__main__":
    print(BEGIN)
    print(table())
    print(END)
