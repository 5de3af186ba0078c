# lms_bridge: `make run` (embedded default) and `make test` (SQLite, then PostgreSQL + Redis).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
export FLASK_APP := wsgi

.PHONY: run test test-sqlite test-postgres setup setup-dev browser migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

migrate: setup
	$(BIN)/flask db upgrade
	$(BIN)/flask ensure-key

run: migrate
	$(BIN)/flask import-packages mooc_packages
	$(BIN)/flask issuer-profile seed
	-@PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/flask devplatform-setup >/dev/null
	@PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/flask tool-config
	@echo "lms_bridge:            http://$(HOST):$(PORT)/"
	@echo "Admin pages:           http://$(HOST):$(PORT)/admin/  (flask --app wsgi create-operator NAME)"
	@echo "Development platform:  http://localhost:$(PORT)/devplatform/"
	@PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} BIND=$(HOST):$(PORT) $(BIN)/python -c 'from lms_bridge.config import content_origin as c; o = c(); print("Package content:       " + (o.base_url + "/content/  (an origin of its own)" if o.base_url else "the tool origin: " + o.note))' || true
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} BIND=$(HOST):$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# Debian's chromium drives the browser tests (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium missing: browser tests will be skipped"; }

test: setup-dev browser
	LMS_BRIDGE_TEST_BACKEND=sqlite $(BIN)/python -m pytest -q tests
	bash .ci/services
	LMS_BRIDGE_TEST_BACKEND=postgres $(BIN)/python -m pytest -q tests

test-sqlite: setup-dev
	LMS_BRIDGE_TEST_BACKEND=sqlite $(BIN)/python -m pytest -q tests

test-postgres: setup-dev
	LMS_BRIDGE_TEST_BACKEND=postgres $(BIN)/python -m pytest -q tests

bench: setup-dev
	$(BIN)/python benchmarks/launch_bench.py
	$(BIN)/python benchmarks/launch_bench.py --backend postgres
	$(BIN)/python benchmarks/progress_bench.py
	$(BIN)/python benchmarks/import_bench.py
	$(BIN)/python benchmarks/ags_bench.py
	$(BIN)/python benchmarks/ags_bench.py --backend postgres
	$(BIN)/python benchmarks/credentials_bench.py
	$(BIN)/python benchmarks/credentials_issue_bench.py

clean:
	rm -rf $(VENV) instance .pytest_cache
