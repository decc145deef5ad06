# Flowr: `make run` (demo site) and `make test` (whole test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

# The demo server with a task worker next to it (it fires the deadlines); Ctrl-C stops
# both (the trap also stops the worker when the server exits for another reason).
run: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setupdemo
	@echo "Flowr demo: open http://$(HOST):$(PORT)/ and log in as demo / flowr-demo, or as a team member listed above (e.g. reviewer / flowr-reviewer)"
	@echo "A task worker runs the deadlines next to the server; Ctrl-C stops both."
	@$(BIN)/python manage.py db_worker --interval 1 --no-reload & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# The whole suite: lint, every test on SQLite, then the database-sensitive tests on
# PostgreSQL (they skip loudly if it is not running, or fail under FLOWR_REQUIRE_SERVICES=1).
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
test: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	env -u DATABASE_URL $(BIN)/python -m pytest -n 2 --dist loadfile
	DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest -m postgres

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .

bench: $(VENV)/.dev-deps
	for f in bench/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles artifacts
