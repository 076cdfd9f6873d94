#!/usr/bin/env bash
# `make run`: the whole system with demo data, in the foreground.
# Demo RTSP cameras, Daphne (HTTP + WebSockets), a Celery worker and Celery beat run
# together; Ctrl-C (or any of them dying) stops them all and leaves nothing behind.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$ROOT/scripts/provision.sh"
cd "$ROOT"

export DEBUG="${DEBUG:-true}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
if [ -z "${SECRET_KEY:-}" ]; then
  # One random key per checkout, kept out of git, so sessions survive a restart.
  [ -s "$RUN_DIR/secret_key" ] || "$PY" -c "import secrets; print(secrets.token_urlsafe(50))" > "$RUN_DIR/secret_key"
  SECRET_KEY="$(cat "$RUN_DIR/secret_key")"
  export SECRET_KEY
fi
if [ "$DEBUG" != "true" ] && [ "$DEBUG" != "1" ]; then
  # Plain-HTTP demo on localhost: TLS-only cookies would make login impossible.
  export SECURE_SSL_REDIRECT="${SECURE_SSL_REDIRECT:-false}" SESSION_COOKIE_SECURE="${SESSION_COOKIE_SECURE:-false}" CSRF_COOKIE_SECURE="${CSRF_COOKIE_SECURE:-false}"
fi
export DEMO_RTSP_PORT="${DEMO_RTSP_PORT:-8554}" DEMO_RTSP_STREAMS="${DEMO_RTSP_STREAMS:-4}"

log "migrating the database"
"$PY" manage.py migrate --noinput -v0
"$PY" manage.py collectstatic --noinput -v0
log "loading demo data"
"$PY" manage.py seed_demo

pids=()
stop_all() {
  trap - INT TERM EXIT
  log "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Celery's warm shutdown takes a few seconds; anything still alive after that is killed.
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  exit "${1:-0}"
}
trap "stop_all 130" INT
trap "stop_all 143" TERM
trap "stop_all" EXIT

"$SYSTEM_PYTHON" scripts/rtsp_server.py --port "$DEMO_RTSP_PORT" --streams "$DEMO_RTSP_STREAMS" > "$RUN_DIR/rtsp.log" 2>&1 &
pids+=($!)
"$VENV/bin/celery" -A smartcity worker --loglevel=INFO --concurrency=2 -n "worker@%h" &
pids+=($!)
"$VENV/bin/celery" -A smartcity beat --loglevel=INFO --schedule "$RUN_DIR/celerybeat-schedule" &
pids+=($!)
# No access log: share links carry their token in the path.
"$VENV/bin/daphne" -b "$HOST" -p "$PORT" -v 0 smartcity.asgi:application &
pids+=($!)

# Wait for Daphne to accept connections (bash's /dev/tcp: no child process, so Ctrl-C
# is handled at once).
for _ in $(seq 1 150); do
  (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null && break
  sleep 0.2
done
cat <<MSG

  Smart City Safety Net is running:  http://$HOST:$PORT/
  Admin:                             http://$HOST:$PORT/admin/
  Health:                            http://$HOST:$PORT/healthz
  Demo cameras (RTSP):               rtsp://127.0.0.1:$DEMO_RTSP_PORT/cam1 … cam$DEMO_RTSP_STREAMS
  Demo logins (password: ${DEMO_PASSWORD:-safenet-demo}):
    admin      administrator
    operator   operator, 서울 중구
    operator2  operator, 안양시
    privacy    privacy officer
  Ctrl-C stops everything.

MSG
# Any process dying takes the others down with it: a half-running system is worse.
wait -n "${pids[@]}" || true
log "a process exited; shutting down the rest"
stop_all 1
