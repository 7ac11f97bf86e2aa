# make run: set up .venv when missing and run the default study.
# make report: the same, then the study's report, results/{study}/report.html.
#   Both take CONFIG=configs/x.yaml (or CONFIG="x.yaml y.yaml") for another
#   study, as snakemake's --configfile does.
# make test: the same set-up, then the test suite but for the cluster test
#   and the fault tests.
# make test-faults: the same set-up, then the tests that kill, resume or
#   break runs on purpose (Snakemake and its jobs killed at every stage,
#   trainings killed and resumed, seeds that diverge), and the test that
#   holds their serial reference run against an older version's tables.
# make test-cluster: the same set-up, then the study on a private SLURM
#   cluster the test starts (tests/cluster/slurm-up; as root it installs
#   Debian's slurm-wlm and munge when missing).
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Rules run `python -m hourglass ...`: the venv's python must come first.
export PATH := $(BIN):$(PATH)

CONFIG ?=
CONFIGFILE := $(if $(CONFIG),--configfile $(CONFIG))
# The study's name: from the last of its config files that sets one.
STUDY = $(shell $(BIN)/python -c 'import sys, yaml; \
	print([s for f in sys.argv[1:] for s in [yaml.safe_load(open(f)).get("study")] if s][-1])' \
	$(or $(CONFIG),config.yaml))

.PHONY: run report test test-faults test-cluster

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	snakemake --cores all $(CONFIGFILE)

report: run
	snakemake $(CONFIGFILE) --report results/$(STUDY)/report.html

test: $(STAMP)
	pytest -m "not cluster and not faults"

test-faults: $(STAMP)
	pytest -m faults

test-cluster: $(STAMP)
	pytest -m cluster -s
