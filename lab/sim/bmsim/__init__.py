"""BlueMind simulator for the bluemind.migration lab (runs inside the lab containers, Python >= 3.9)."""
