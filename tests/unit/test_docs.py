"""Every plugin's DOCUMENTATION, EXAMPLES and RETURN parse as YAML (a stray ': ' in a sentence breaks
ansible-doc, and sanity finds it only minutes later)."""
import ast
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (TOP / "plugins").glob("*/*.py") if p.parent.name in ("modules", "filter"))


def documentation(path):
    tree = ast.parse(path.read_text())
    return {node.targets[0].id: node.value.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")}


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_docs_parse(path):
    docs = documentation(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    parsed = {name: yaml.safe_load(text) for name, text in docs.items()}

    def strings_only(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "description":
                    items = item if isinstance(item, list) else [item]
                    assert all(isinstance(i, str) for i in items), f"{where}: a description is not text: {items}"
                else:
                    strings_only(item, f"{where}.{key}")
        elif isinstance(value, list):
            for item in value:
                strings_only(item, where)

    strings_only(parsed["DOCUMENTATION"], "DOCUMENTATION")
    strings_only(parsed["RETURN"], "RETURN")
