# Sourced by every script: where things are and which services to use.
# Variables already set in the environment always win.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"
mkdir -p "$RUN_DIR"
# provision.sh records here the services it set up on this machine (e.g. a local role).
if [ -f "$RUN_DIR/local.env" ]; then
  while IFS='=' read -r key value; do
    [ -n "$key" ] && [ -z "${!key:-}" ] && export "$key=$value"
  done < "$RUN_DIR/local.env"
fi
export DATABASE_URL="${DATABASE_URL:-postgis://postgres@127.0.0.1:5432/smartcity}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-smartcity.settings}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
SYSTEM_PYTHON=/usr/bin/python3   # Debian's: the only one where PyGObject (gst-rtsp-server) imports

# What `make test` and `make faults` run under: a Redis database of their own (so tests
# never touch a running demo's queues) and production-like settings without TLS.
use_test_env() {
  export REDIS_URL="${TEST_REDIS_URL:-${REDIS_URL%/*}/15}"
  export SECRET_KEY="${SECRET_KEY:-test-only-secret-key-not-for-production-0123456789}"
  export DEBUG=false SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false
}

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }
