#!/usr/bin/env bash
# `make test`: provision, then lint, type-check and run the whole suite against real
# PostGIS, Redis, Celery and RTSP servers. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$ROOT/scripts/provision.sh" --test
cd "$ROOT"
# Tests use their own Redis database so they never touch a running demo's queues.
export REDIS_URL="${TEST_REDIS_URL:-${REDIS_URL%/*}/15}"
export SECRET_KEY="${SECRET_KEY:-test-only-secret-key-not-for-production-0123456789}"
export DEBUG=false SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false
log "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
log "mypy"
"$VENV/bin/mypy" .
log "collectstatic"
"$PY" manage.py collectstatic --noinput -v0  # pages under test use the hashed manifest, as in production
log "pytest"
"$VENV/bin/pytest" "$@"
