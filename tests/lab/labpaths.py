"""Where the lab of this checkout is (shared by the lab and integration tests).

A module of its own, with a name no other test folder uses: `from conftest import ...` finds
whichever conftest.py pytest imported first when tests/lab and tests/integration run together.
"""
import os
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
VENV_BIN = TOP / ".venv" / "bin"
# BMLAB_NAME selects a lab beside the default one, named as lab/lab.sh names it: containers
# $BMLAB_NAME-origin/-target, state in lab/.state-$BMLAB_NAME, inventory lab/inventory-$BMLAB_NAME.yml.
LAB_NAME = os.environ.get("BMLAB_NAME") or "bmlab"
_SUFFIX = "" if LAB_NAME == "bmlab" else "-" + LAB_NAME
LAB_STATE = TOP / "lab" / (".state" + _SUFFIX) / "lab.json"
LAB_INVENTORY = TOP / "lab" / ("inventory" + _SUFFIX + ".yml")
