#!/usr/bin/env bash
# `make bench`: provision, then measure the system's performance targets against a
# database of its own (smartcity_bench: same server and role as DATABASE_URL), so the
# million-row data sets never touch the development data. Extra arguments are section
# names (see `python -m bench --list`); none runs them all.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
bash "$HERE/provision.sh" --bench
# Sourced after provisioning: provision.sh may have recorded a local role in .run/local.env.
source "$HERE/env.sh"
cd "$ROOT"
export PGOPTIONS='-c client_min_messages=warning'
BENCH_DB="${BENCH_DB:-smartcity_bench}"

url_with_db() {  # DATABASE_URL with another database name; $2 = "libpq" also swaps the postgis:// scheme
  "$PY" - "$DATABASE_URL" "$1" "${2:-}" <<'PYEOF'
import sys
from urllib.parse import urlsplit, urlunsplit
parts = urlsplit(sys.argv[1])
scheme = "postgresql" if sys.argv[3] == "libpq" else parts.scheme
print(urlunsplit((scheme, parts.netloc, "/" + sys.argv[2], parts.query, "")))
PYEOF
}

if ! psql "$(url_with_db postgres libpq)" -XtAqc "select 1 from pg_database where datname='${BENCH_DB}'" | grep -q 1; then
  log "creating database ${BENCH_DB}"
  psql "$(url_with_db postgres libpq)" -XtAqc "CREATE DATABASE \"${BENCH_DB}\""
fi
psql "$(url_with_db "$BENCH_DB" libpq)" -XtAqc 'CREATE EXTENSION IF NOT EXISTS postgis' >/dev/null
DATABASE_URL="$(url_with_db "$BENCH_DB")"
export DATABASE_URL

# A Redis database of its own too: the intake section's servers publish and count there.
export REDIS_URL="${BENCH_REDIS_URL:-${REDIS_URL%/*}/9}"
export SECRET_KEY="${SECRET_KEY:-bench-only-secret-key-not-for-production-0123456789}"
# DEBUG off as in production; it also stops Django keeping every query in memory.
export DEBUG=false SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false
log "migrating ${BENCH_DB}"
"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py collectstatic --noinput -v 0  # the intake section's trivial endpoint is a static file
log "benchmarks"
"$PY" -m bench "$@"
