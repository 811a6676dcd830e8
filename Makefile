# The two commands of the README: `make quickstart` and `make test`. Each creates or reuses .venv,
# installing the versions of constraints.txt (those the suite last passed with; `make constraints`
# refreshes it). `make env` writes the .env of docker-compose.yml; `make image` builds the image.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The image of docker-compose.yml and deploy/k8s; push it where your cluster pulls from, e.g.
# `make image IMAGE=registry.example.com/roster:0.1.0 PUSH=1` (docs/deploy.md).
IMAGE ?= roster:dev
DOCKER ?= docker
PUSH ?=

.PHONY: quickstart test docs lint bench clean env image constraints

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Roster needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

quickstart: $(STAMP) env
	$(BIN)/roster run examples/quickstart.yaml

test: $(STAMP)
	bash tests/services.sh postgresql mariadb rabbitmq
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# docker-compose.yml's secrets in .env: random ones for those it lacks (mode 0600, git-ignored); the
# values already there are kept.
env:
	@$(PYTHON) deploy/make_env.py .env

image:
	$(DOCKER) build -f deploy/Dockerfile --target runtime -t $(IMAGE) .
	$(if $(PUSH),$(DOCKER) push $(IMAGE))

# After upgrading dependencies and a green `make test`: pin what the venv holds now.
constraints: $(STAMP)
	{ echo '# pip install -c constraints.txt -e ".[dev]": the versions `make test` last passed with.'; \
	  echo '# Refresh: make constraints (pip freeze of .venv, after a green make test).'; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt

# docs/configuration.md and docs/functions.md are generated from the code; a test fails when stale.
docs: $(STAMP)
	$(BIN)/python -m engine.cli.docs

bench: $(STAMP)
	$(BIN)/python tests/bench/pipeline.py --objects 100000

clean:
	rm -rf examples/.roster .pytest_cache .ruff_cache
