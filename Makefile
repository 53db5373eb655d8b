# Two commands set up and run everything on a fresh machine:
#   make demo   -- run the main job on the embedded default (local Ray, local S3)
#   make test   -- run the test suite
# Both create .venv/ from this repo's own files when it is missing; `make .venv` does only that.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.smray-installed
# `make test` is the suite CI runs within its 15-minute budget (the end-to-end runs marked slow are
# left out: the whole suite takes ~16 minutes on 2 cores); `make test-all` runs everything.
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo rehearsal seasons test test-all bench .venv clean-venv

.venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/smray demo

# The decade rehearsal (smray/configs/rehearsal.yaml): 2002-06-19 .. 2011-10-04 over one region, the
# mission chain's shape, on a local Ray runtime; outputs under .smray/rehearsal
rehearsal: $(STAMP)
	$(VENV)/bin/smray reprocess --config smray/configs/rehearsal.yaml --root $(CURDIR)/.smray/rehearsal

# The seasons experiment (smray/configs/seasons.yaml): train on 2009, score January, April, July and
# October 2010 per season and month; outputs under .smray/seasons
seasons: $(STAMP)
	$(VENV)/bin/smray experiment seasons --config smray/configs/seasons.yaml --root $(CURDIR)/.smray/seasons

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_synth.py

clean-venv:
	rm -rf $(VENV)
