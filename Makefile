# rfr: two commands for a fresh machine — `make run` (set up + start the workbench) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup pack lint worker bench-engine bench-index bench-workbench bench-probes bench-enrolment clean

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/.installed pack
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup

pack: $(BIN)/.installed
	$(BIN)/python manage.py modelpack fetch

## Set up everything and start the workbench on the embedded default at http://127.0.0.1:8000
## (--insecure makes runserver serve static/ although DEBUG is off; production uses a real web server)
run: setup
	$(BIN)/python manage.py runserver --insecure 127.0.0.1:8000

## Lint, type-check and run the whole test suite (on PostgreSQL + Redis where they run locally)
test: $(BIN)/.installed pack
	@bash scripts/test.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## One Celery worker for every queue (inference, search, housekeeping; rfr/queues.py); needs REDIS_URL.
## Production runs one worker per queue (README, docker-compose.yml).
worker: $(BIN)/.installed
	$(BIN)/celery -A rfr worker -Q inference,search,housekeeping --loglevel=INFO --concurrency=2

bench-engine: $(BIN)/.installed pack
	$(BIN)/python -m bench.engine

bench-index: $(BIN)/.installed pack
	$(BIN)/python -m bench.index

## Upload to candidates on screen (1080p probe, 10k-subject gallery), embedded and production shapes
bench-workbench: $(BIN)/.installed pack
	$(BIN)/python -m bench.workbench

## Upload to faces shown for a 7500x5000 JPEG and ordinary photos, stage by stage
bench-probes: $(BIN)/.installed pack
	$(BIN)/python -m bench.probes

## Bulk-enrolment images/s with 1 and 2 real Celery worker processes (needs DATABASE_URL and REDIS_URL)
bench-enrolment: $(BIN)/.installed pack
	$(BIN)/python -m bench.enrolment

clean:
	rm -rf var/ test-artifacts/
