# The two commands of the README: `make quickstart` and `make test`. Each creates or reuses .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test docs lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Roster needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/roster run examples/quickstart.yaml

test: $(STAMP)
	bash tests/services.sh postgresql rabbitmq
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# docs/configuration.md and docs/functions.md are generated from the code; a test fails when stale.
docs: $(STAMP)
	$(BIN)/python -m engine.cli.docs

bench: $(STAMP)
	$(BIN)/python tests/bench/pipeline.py --objects 100000

clean:
	rm -rf examples/.roster .pytest_cache .ruff_cache
