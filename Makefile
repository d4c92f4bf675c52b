# Two commands for a fresh machine:  make run   (set up, export, run the whole course)
#                                    make test  (set up what is missing, run every test)
# Variables: PROFILE=auto|smoke|workshop|full   PYTHON=python3   VENV=.venv
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= auto
BIN := $(VENV)/bin
PY := $(BIN)/python
# The torch release to install (tools/install.sh picks the build: the CPU wheel on a Linux machine without an
# NVIDIA GPU when the PyTorch CPU index is reachable, else the default index; see the README). A machine that
# already has torch (CPU or CUDA) keeps its own.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup export run test test-unit test-notebooks test-site test-sync clean doctor lab start assistant

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

# Part 6's assistant, trained by the course from nothing: tokenizer, pretraining, SFT, tools, DPO, RL, then the
# report card (runs/assistant/<profile>/report.md). Each stage is saved as it finishes; after a kill, the same
# command resumes from the last saved stage.
assistant: export
	HF_HUB_OFFLINE=1 $(BIN)/course assistant --profile $(PROFILE)

# A learner's own copy of the chapters (solutions stubbed); no test and no tool ever rewrites it.
start: setup
	$(BIN)/course start my_work

lab: start
	$(BIN)/jupyter lab my_work/

# Everything below runs offline: tools/offline/sitecustomize.py makes any connection
# outside this machine fail loudly, in pytest and in every notebook.
TEST_ENV := PYTHONPATH=$(CURDIR)/tools/offline COURSE_BLOCK_NETWORK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
	COURSE_STRICT_CHECKS=1 MPLBACKEND=Agg

# A student copy (written by `course release --student`, marked by .student-copy) has its solutions stubbed:
# its notebooks stop at the first exercise by design, so there `make test` checks the sync and the unit tests.
STUDENT_COPY := $(wildcard .student-copy)

test: setup test-sync test-unit $(if $(STUDENT_COPY),,test-notebooks test-site)

test-unit: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q tests

# Every notebook in the smoke profile through the course's own executor (`course run`: a fresh kernel per
# notebook, strict checks and the network guard from TEST_ENV); the executed copies land in runs/smoke.
test-notebooks: setup
	$(TEST_ENV) $(BIN)/course run --profile smoke --out runs/smoke

# The site of the whole course, built from those executed copies: pages, links (read by an HTML parser), no
# asset from the web, and the pages opened in headless Chromium when it is installed.
test-site: setup
	@test -f runs/smoke/report.json || { echo "FAIL: runs/smoke has no executed notebooks: run make test-notebooks first"; exit 1; }
	$(TEST_ENV) COURSE_SITE_RUNS=$(CURDIR)/runs/smoke $(BIN)/python -m pytest -q tests/test_site.py -k whole_course

# The library can never drift from the notebooks: exporting and cleaning must change no tracked file.
# The check runs on a temporary copy, so it never rewrites nbs/ or course_lib/. In a git checkout the copy is
# what git would commit (the index): a learner's unstaged answers are neither checked nor touched (`git add`
# your own changes first to check them). Outside git (a student copy) it copies the files as they are.
SYNC_PATHS := settings.ini setup.py pyproject.toml nbs course_lib
test-sync: setup
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && mkdir -p "$$tmp/tracked" && \
	if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ]; then \
	  git ls-files -z -- $(SYNC_PATHS) | git checkout-index -z --stdin --prefix="$$tmp/tracked/"; \
	else \
	  tar -c --exclude=__pycache__ --exclude=.ipynb_checkpoints $(wildcard $(SYNC_PATHS)) | tar -x -C "$$tmp/tracked"; \
	fi && cp -a "$$tmp/tracked" "$$tmp/synced" && \
	( cd "$$tmp/synced" && $(abspath $(BIN))/nbdev_export && $(abspath $(BIN))/nbdev_clean ) && \
	find "$$tmp/synced" -name __pycache__ -prune -exec rm -rf {} + && \
	if ! diff -rq "$$tmp/tracked" "$$tmp/synced" >"$$tmp/diff"; then \
	  echo "FAIL: nbdev_export/nbdev_clean would change these files (export the notebooks and run nbdev_clean, then commit):"; \
	  sed "s|$$tmp/tracked/||g; s|$$tmp/synced/||g; s|$$tmp/synced|.|g; s|$$tmp/tracked|.|g" "$$tmp/diff"; exit 1; \
	fi
	@echo "OK: notebooks, library and cleaned notebooks are in sync (checked on a copy; nothing here was rewritten)"

clean:
	rm -rf runs build dist *.egg-info
