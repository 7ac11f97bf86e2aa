# make run: set up .venv when missing and run the default study.
# make test: the same set-up, then the whole test suite.
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Rules run `python -m hourglass ...`: the venv's python must come first.
export PATH := $(BIN):$(PATH)

.PHONY: run test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	snakemake --cores all

test: $(STAMP)
	pytest
