# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install aelens first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aelens-installed
TORCH ?= torch==2.13.0

.PHONY: install demo test bench docs clean

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
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/aelens bench --out .

clean:
	rm -rf demo runs site .pytest_cache

# the manual: docs/ -> site/ (warnings are errors: a broken link or a missing API reference fails)
docs: $(STAMP)
	$(BIN)/mkdocs build --strict
