PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first from the CPU wheel, otherwise pip resolves a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/auxnas space --tasks segmentation depth normal --inputs 3
	$(BIN)/auxnas space --tasks segmentation depth normal --inputs 3 --basic > /tmp/auxnas-basic.json
	$(BIN)/auxnas validate /tmp/auxnas-basic.json

test: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
