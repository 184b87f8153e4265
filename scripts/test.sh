#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it.
#
# Where PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer, the suite runs in the production
# shape against them (DATABASE_URL/REDIS_URL), so database triggers, locking and the broker are tested for
# real; in CI they are required. Without them it runs on the embedded default and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

if [ ! -f tests/e2e/node_modules/axe-core/axe.min.js ] && command -v npm >/dev/null 2>&1; then
  echo "== installing axe-core for the browser accessibility checks"
  (cd tests/e2e && npm ci --silent --no-audit --no-fund)
fi

echo "== lint: ruff and mypy"
$BIN/ruff check .
$BIN/ruff format --check .
$BIN/mypy .

pg_up() { $BIN/python -c "import psycopg; psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres', connect_timeout=3).close()" 2>/dev/null; }
redis_up() { $BIN/python -c "import redis; redis.Redis.from_url('redis://127.0.0.1:6379/15', socket_timeout=3).ping()" 2>/dev/null; }

if [ -z "${DATABASE_URL:-}" ] && pg_up; then export DATABASE_URL=postgres://postgres@127.0.0.1:5432/rfr; fi
if [ -z "${REDIS_URL:-}" ] && redis_up; then export REDIS_URL=redis://127.0.0.1:6379/15; fi
if [ -n "${CI:-}" ] && { [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; }; then
  echo "CI needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379; .ci/run starts them." >&2
  exit 1
fi

# Both runs on RFR_TEST_PROCESSES processes (pytest-xdist; 2 by default, 1 = one process, no xdist), a test
# module's tests together in one process. Each process has its own test database, Redis db, data folder and
# scratch databases (tests/parallel.py); the longest modules go first (tests/conftest.py).
PROCESSES="${RFR_TEST_PROCESSES:-2}"
if ! [[ "$PROCESSES" =~ ^[1-9][0-9]*$ ]]; then
  echo "RFR_TEST_PROCESSES must be a whole number of processes, 1 or more (got '$PROCESSES')" >&2
  exit 2
fi
PARALLEL=()
if [ "$PROCESSES" -gt 1 ]; then PARALLEL=(-n "$PROCESSES" --dist loadfile --no-loadscope-reorder); fi

echo "== tests on ${DATABASE_URL:-SQLite (embedded default)}, broker: ${REDIS_URL:-none (eager tasks)}, $PROCESSES process(es)"
$BIN/pytest ${PARALLEL[@]+"${PARALLEL[@]}"} "$@"

echo "== tests of the embedded default (SQLite, eager tasks), $PROCESSES process(es)"
env -u DATABASE_URL -u REDIS_URL $BIN/pytest ${PARALLEL[@]+"${PARALLEL[@]}"} -m embedded -p no:cacheprovider
