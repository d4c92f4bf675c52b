# Two commands for a fresh machine:  make run   (set up, export, run the whole course)
#                                    make test  (set up what is missing, run every test)
# Variables: PROFILE=auto|smoke|workshop|full   PYTHON=python3   VENV=.venv
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= auto
BIN := $(VENV)/bin
PY := $(BIN)/python
# The pinned CPU wheel of torch; a machine that already has torch (CPU or CUDA) keeps its own.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup export run test test-unit test-notebooks test-sync clean doctor lab

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py settings.ini tools/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) TORCH_SPEC=$(TORCH_SPEC) bash tools/install.sh
	touch $@

export: setup
	$(BIN)/nbdev_export

run: export
	HF_HUB_OFFLINE=1 $(BIN)/course run --profile $(PROFILE)

doctor: setup
	$(BIN)/course doctor

lab: setup
	$(BIN)/jupyter lab nbs/

# Everything below runs offline: tools/offline/sitecustomize.py makes any connection
# outside this machine fail loudly, in pytest and in every notebook.
TEST_ENV := PYTHONPATH=$(CURDIR)/tools/offline COURSE_BLOCK_NETWORK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
	COURSE_STRICT_CHECKS=1 MPLBACKEND=Agg

test: setup test-sync test-unit test-notebooks

test-unit: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q tests

test-notebooks: setup
	$(TEST_ENV) COURSE_PROFILE=smoke $(BIN)/nbdev_test --n_workers 1 --do_print --timing

# The library can never drift from the notebooks: exporting and cleaning must change no tracked file.
test-sync: setup
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@git diff --quiet --exit-code -- . || { echo "FAIL: nbdev_export/nbdev_clean changed tracked files (commit the notebooks' export, run nbdev_clean):"; git diff --stat; exit 1; }
	@echo "OK: notebooks, library and cleaned notebooks are in sync"

clean:
	rm -rf runs build dist *.egg-info
