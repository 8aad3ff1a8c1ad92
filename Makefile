# bluemind.migration: the two commands of the README are `make demo` and `make test`; everything they
# need (Docker engine, debootstrap, the Python toolchain) is installed here when missing.
SHELL := /bin/bash
SCALE ?= s
# The lab's BlueMind flavour: 4 (Debian 11 -> 12, the default) or 5 (Debian 12 -> 13, lab/CONTRACT.md).
BLUEMIND ?= $(or $(BMLAB_BLUEMIND),4)
export BMLAB_BLUEMIND := $(BLUEMIND)
VENV := .venv
PY := $(VENV)/bin/python
SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help setup venv system lab lab-down lab-sync seed demo bench \
        test test-unit test-static test-lab test-molecule clean

help:
	@echo "make demo        a whole migration in the lab at scale m, with the report (SCALE=s for a quick one)"
	@echo "make test        set up what is missing, then unit, sanity/lint, lab and molecule tests"
	@echo "make lab         build or reuse the lab images, start origin + target, seed (SCALE=s|m|l, BLUEMIND=4|5)"
	@echo "make lab-down    remove the lab hosts and network"
	@echo "make seed        reseed the running lab at SCALE"
	@echo "make bench       benchmarks against the vendor's commands on a lab of their own (SCALE=s|m|l, RUNS=3, REPS=3)"

system:
	@bash scripts/bootstrap.sh system

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements-dev.txt scripts/bootstrap.sh
	@bash scripts/bootstrap.sh venv

setup: system venv

lab: setup
	@bash lab/lab.sh up $(SCALE)

lab-down:
	@bash lab/lab.sh down

lab-sync:
	@bash lab/lab.sh sync

seed:
	@bash lab/lab.sh seed $(SCALE)

demo: setup
	@SCALE=$(if $(filter command line,$(origin SCALE)),$(SCALE),m) bash scripts/demo.sh

bench: setup
	@SCALE=$(SCALE) bash bench/run.sh

test: setup
	$(MAKE) test-unit
	$(MAKE) test-static
	$(MAKE) test-lab
	@# the scenarios have hosts of their own; a lab left up would share the machine with them and with
	@# a benchmark run after (a failed test-lab stops here and leaves it up to look at)
	$(MAKE) lab-down
	$(MAKE) test-molecule

test-unit: venv
	$(PY) -m pytest -p no:cacheprovider tests/unit

test-static: venv
	bash tests/sanity.sh
	ansible-lint --offline

# The lab tests need the lab: BMLAB_REQUIRED turns "no lab" into a failure instead of a skip.
test-lab: lab
	BMLAB_REQUIRED=1 $(PY) -m pytest -p no:cacheprovider --durations=15 tests/lab $(wildcard tests/integration)

test-molecule: setup
	@bash scripts/molecule.sh $(SCENARIOS)

clean: lab-down
	rm -rf $(VENV)
