# The commands a person types. `make run` and `make test` work on a bare machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Live sockets uncompressed: per-message deflate costs more CPU per event than the whole send
# (bench/README.md, live.py); a proxy in front may still compress.
UVICORN_FLAGS ?= --ws-per-message-deflate false

.PHONY: run test lint fuzz bench worker serve setup venv clean seed

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Embedded default (SQLite, inline jobs, in-memory layers) unless DATABASE_URL/REDIS_URL are set.
run: venv
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py setup --demo-key sample-api-key-789
	@echo "Serving HTTP and WebSocket on http://$(HOST):$(PORT)  (dashboard: /, docs: /api-docs, admin: /admin/)"
	DEBUG=$${DEBUG:-1} $(BIN)/uvicorn analytics_platform.asgi:application --host $(HOST) --port $(PORT) $(UVICORN_FLAGS)

# Sample events into the demo project that `make run` set up (`make seed SEED_ARGS="--events 1000000"`).
seed: venv
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed $(SEED_ARGS)

# Production-style processes, for when DATABASE_URL and REDIS_URL are set.
serve: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/uvicorn analytics_platform.asgi:application --host $(HOST) --port $(PORT) --workers $${WEB_CONCURRENCY:-2} $(UVICORN_FLAGS)

worker: venv
	$(BIN)/python manage.py rqworker default --with-scheduler

test: venv
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=1 $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

# The API fuzzed from its own OpenAPI schema (schemathesis) on a throwaway embedded server:
# any 5xx fails. About a minute; FUZZ_EXAMPLES, FUZZ_SECONDS and FUZZ_SEED tune it (.ci/fuzz).
fuzz: venv
	bash .ci/fuzz

bench: venv
	@set -e; scripts=$$(ls bench/*.py 2>/dev/null || true); \
	if [ -z "$$scripts" ]; then echo "No benchmarks yet (bench/README.md)."; fi; \
	for script in $$scripts; do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-shm db.sqlite3-wal
