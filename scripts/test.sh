#!/usr/bin/env bash
# `make test`: provision, then lint, type-check and run the whole suite against real
# PostGIS, Redis, Celery and RTSP servers. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$ROOT/scripts/provision.sh" --test
cd "$ROOT"
use_test_env
log "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
log "mypy"
"$VENV/bin/mypy" .
log "collectstatic"
"$PY" manage.py collectstatic --noinput -v0  # pages under test use the hashed manifest, as in production
log "pytest"
"$VENV/bin/pytest" "$@"
