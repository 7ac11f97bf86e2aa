# make run: set up .venv when missing and run the default study.
# make test: the same set-up, then the test suite but for the cluster test.
# make test-cluster: the same set-up, then the study on a private SLURM
#   cluster the test starts (tests/cluster/slurm-up; as root it installs
#   Debian's slurm-wlm and munge when missing).
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Rules run `python -m hourglass ...`: the venv's python must come first.
export PATH := $(BIN):$(PATH)

.PHONY: run test test-cluster

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	snakemake --cores all

test: $(STAMP)
	pytest -m "not cluster"

test-cluster: $(STAMP)
	pytest -m cluster -s
