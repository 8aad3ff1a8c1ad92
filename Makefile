# bluemind.migration: the two commands of the README are `make demo` and `make test`; everything they
# need (Docker engine, debootstrap, the Python toolchain) is installed here when missing.
SHELL := /bin/bash
SCALE ?= s
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup venv system lab lab-down lab-sync seed test test-lab test-unit demo clean

help:
	@echo "make test        set up what is missing, build/reuse the lab, run the whole test suite"
	@echo "make demo        a whole migration in the lab (issue 5: not there yet)"
	@echo "make lab         build or reuse the lab images, start origin + target, seed (SCALE=s|m|l)"
	@echo "make lab-down    remove the lab hosts and network"
	@echo "make seed        reseed the running lab at SCALE"

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

# The lab tests need the lab: BMLAB_REQUIRED turns "no lab" into a failure instead of a skip.
test-lab: lab
	BMLAB_REQUIRED=1 $(PY) -m pytest -p no:cacheprovider tests/lab

test: test-lab

clean: lab-down
	rm -rf $(VENV)
