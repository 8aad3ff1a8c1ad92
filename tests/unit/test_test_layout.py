"""The lab and integration tests run in one pytest call (make test-lab): no test module may import
from `conftest`, which then names whichever of the two folders' conftest.py pytest loaded first."""
import re
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
MODULES = sorted(p for folder in ("lab", "integration") for p in (TOP / "tests" / folder).glob("test_*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_import_from_conftest(path):
    assert not re.search(r"^\s*(from conftest import|import conftest)", path.read_text(), re.M), (
        "import lab paths from tests/lab/labpaths.py instead")
