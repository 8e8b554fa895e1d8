# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install aelens first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aelens-installed
TORCH ?= torch==2.13.0

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build on a CPU machine
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/aelens demo --out demo

# lint and format check first (seconds), then the tests
test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/aelens bench --out .

clean:
	rm -rf demo runs .pytest_cache
