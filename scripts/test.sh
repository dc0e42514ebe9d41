#!/usr/bin/env bash
# Run the test suite on SQLite and, when a local PostgreSQL is reachable, on a throwaway
# PostgreSQL database too. Arguments are passed to pytest. The suite runs on one worker per CPU
# (at most 4; pytest-xdist); LIMS_TEST_PARALLEL=0 runs it in one process, =N on N workers.
set -uo pipefail
cd "$(dirname "$0")/.."

# Start the local cluster if it is installed but down (CI machines start it; laptops may not).
if command -v pg_lsclusters >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
  if ! pg_lsclusters --no-header 2>/dev/null | grep -q online; then
    for version in $(ls /etc/postgresql); do
      echo "test: starting PostgreSQL $version/main"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    done
  fi
fi

test_db=""
drop_test_db() {
  if [[ -n $test_db ]]; then
    psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS \"$test_db\" WITH (FORCE)" >/dev/null 2>&1 \
      || echo "test: WARNING: could not drop database $test_db" >&2
  fi
}
trap drop_test_db EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${LIMS_TEST_POSTGRES_URL:-} ]]; then
  echo "test: engines: sqlite, postgresql (LIMS_TEST_POSTGRES_URL from the environment)"
elif command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 -t 5; then
  name="lims_test_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  if psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
      -c "CREATE DATABASE \"$name\"" >/dev/null; then
    test_db="$name"
    export LIMS_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:5432/$test_db"
    echo "test: engines: sqlite, postgresql (database $test_db, dropped afterwards)"
  else
    echo "test: engines: sqlite (PostgreSQL reachable but CREATE DATABASE failed)"
  fi
else
  echo "test: engines: sqlite (PostgreSQL not reachable)"
fi

workers=${LIMS_TEST_PARALLEL:-auto}
if [[ $workers == auto ]]; then
  cpus=$(nproc 2>/dev/null || echo 1)
  workers=$(( cpus > 4 ? 4 : cpus ))
fi
pytest_args=()
if [[ $workers =~ ^[0-9]+$ ]] && (( workers > 1 )); then
  echo "test: $workers workers (LIMS_TEST_PARALLEL=0 for one process)"
  pytest_args+=(-p xdist -n "$workers")
fi

# The Playwright tests drive Debian's /usr/bin/chromium (installed by setup.sh);
# Playwright's own browser download ("playwright install") is never used.
.venv/bin/python -m pytest "${pytest_args[@]}" "$@"
status=$?
if [[ $status -eq 5 ]]; then
  echo "test: FAILED: pytest collected no tests (exit code 5)" >&2
  exit 1
fi
exit "$status"
