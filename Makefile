# Two entry points: `make run` (set up, migrate, load demo data, serve) and `make test` (every check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: lock run test lint typecheck schema-check migrations-check pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e . --config-settings editable_mode=lenient
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]' --config-settings editable_mode=lenient
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/precis migrate
	$(BIN)/precis demo load --if-empty
	$(BIN)/precis token --header
	$(BIN)/precis serve

test: $(VENV)/.installed-dev lint typecheck schema-check migrations-check pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

schema-check: $(VENV)/.installed-dev
	$(BIN)/precis schema export | diff -u schema.graphql - \
		|| (echo "schema.graphql is stale: run '$(BIN)/precis schema export > schema.graphql'" && exit 1)

migrations-check: $(VENV)/.installed-dev
	$(BIN)/python -m tests.migrations_check

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/graphql_users.py
	$(BIN)/python bench/upsert_users.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Re-resolve every dependency to its newest release and record the exact versions.
lock:
	rm -rf /tmp/precis-lock && $(PYTHON) -m venv /tmp/precis-lock
	/tmp/precis-lock/bin/pip install --quiet -e '.[dev]' --config-settings editable_mode=lenient
	(echo '# Exact versions CI and `make` install (pip -c): upgrade deliberately with `make lock`.'; /tmp/precis-lock/bin/pip freeze --exclude-editable) > constraints.txt
