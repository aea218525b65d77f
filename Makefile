PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LOCK := requirements.lock
UV := uv==0.13.9

.PHONY: demo test test-fast test-compose lint install lock clean

# Every version comes from $(LOCK) (pip, setuptools and the project's whole dependency tree), the
# same file the image installs from; torch is outside the lock (README: "Pinned versions").
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c $(LOCK) pip setuptools poetry-core
	# torch first, pinned: the CPU wheel where pip's index serves one (README: Quick start)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-build-isolation -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# a short real search (Joint, basic, 12 candidates) on the built-in synthetic data, on the CPU
demo: $(STAMP)
	mkdir -p runs
	RAY_AUTH_MODE=disabled AUXNAS_DATABASE_URL=$${AUXNAS_DATABASE_URL:-sqlite:///runs/demo.db} \
		$(BIN)/auxnas search configs/synthetic-compete.yaml --output runs/synthetic-compete-best.json
	$(BIN)/auxnas validate runs/synthetic-compete-best.json

# everything (what CI runs): 6 to 8 minutes on 2 cores
test: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q

# unit, API and storage tests: everything but the `slow` ones (clusters, service processes,
# killed workers, real training in subprocesses) and the `ray` ones (searches end to end on the
# suite's Ray session); under 2 minutes on 2 cores
test-fast: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -m "not slow and not ray"

# The image and the compose stack run for real (tests/container/smoke.py): needs podman (and, where
# no image registry answers, debootstrap): tests/container/install-engine.sh. Not part of `test`.
test-compose: $(STAMP)
	$(BIN)/python -m tests.container.smoke

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Regenerates $(LOCK) from pyproject.toml's ranges (and the dev extra), torch left out: run it to
# upgrade, review the diff, commit. A universal lock: one file for every platform and Python >= 3.10.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(UV)
	mkdir -p build
	$(BIN)/python tools/lock_input.py > build/lock.in
	$(BIN)/uv pip compile --quiet --universal --python-version 3.10 --custom-compile-command 'make lock' \
		build/lock.in -o $(LOCK)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
