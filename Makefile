PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel where pip's index serves one (README: Quick start)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# a short real search (Joint, basic, 12 candidates) on the built-in synthetic data, on the CPU
demo: $(STAMP)
	mkdir -p runs
	RAY_AUTH_MODE=disabled AUXNAS_DATABASE_URL=$${AUXNAS_DATABASE_URL:-sqlite:///runs/demo.db} \
		$(BIN)/auxnas search configs/synthetic-compete.yaml --output runs/synthetic-compete-best.json
	$(BIN)/auxnas validate runs/synthetic-compete-best.json

test: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
