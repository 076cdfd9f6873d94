#!/usr/bin/env bash
# Make this machine ready to run or test the system, installing only what is missing:
# Debian packages, the virtualenv, PostgreSQL + PostGIS and Redis (unless DATABASE_URL /
# REDIS_URL point elsewhere). Idempotent: a second run takes seconds.
# Usage: provision.sh [--test | --bench]   (what only the test suite / the benchmarks need)
set -euo pipefail
source "$(dirname "$0")/env.sh"
export PGOPTIONS='-c client_min_messages=warning'
WANT_TEST=0
WANT_BENCH=0
[ "${1:-}" = "--test" ] && WANT_TEST=1
[ "${1:-}" = "--bench" ] && WANT_BENCH=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: cannot install system packages"
  SUDO="sudo"
fi

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do is_installed "$pkg" || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ $APT_UPDATED -eq 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- system libraries and tools -------------------------------------------------
GDAL_PKG=libgdal32
apt-cache show libgdal32 >/dev/null 2>&1 || GDAL_PKG=$(apt-cache search --names-only '^libgdal[0-9]+$' | awk '{print $1}' | sort -V | tail -1)
PACKAGES=(
  "${GDAL_PKG:-libgdal32}" postgresql-client
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  gstreamer1.0-rtsp gstreamer1.0-x gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi
  ffmpeg
)
# Korean glyphs for the browser tests and their screenshots; x265enc (plugins-bad) for
# the H.265 test camera that shows the player's "codec not supported".
[ $WANT_TEST -eq 1 ] && PACKAGES+=(chromium fonts-nanum gstreamer1.0-plugins-bad)
# callgrind counts the intake's instructions (bench/instructions.py)
[ $WANT_BENCH -eq 1 ] && PACKAGES+=(valgrind)
apt_install "${PACKAGES[@]}"

# --- Python virtualenv ---------------------------------------------------------
PYTHON_BIN=""
for cand in python3.11 python3; do command -v "$cand" >/dev/null && PYTHON_BIN=$cand && break; done
[ -n "$PYTHON_BIN" ] || die "no python3 found"
if [ ! -x "$PY" ]; then
  log "creating virtualenv in .venv"
  "$PYTHON_BIN" -m venv "$VENV" || { apt_install python3-venv; "$PYTHON_BIN" -m venv "$VENV"; }
fi
req_hash=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.requirements-hash" 2>/dev/null)" != "$req_hash" ]; then
  log "installing Python requirements"
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
  "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
  echo "$req_hash" > "$VENV/.requirements-hash"
fi

# --- Redis -----------------------------------------------------------------------
redis_ping() { "$PY" - "$REDIS_URL" <<'PYEOF'
import sys, redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()
except Exception:
    sys.exit(1)
PYEOF
}
if ! redis_ping; then
  case "$REDIS_URL" in
    redis://127.0.0.1:6379*|redis://localhost:6379*)
      apt_install redis-server
      log "starting a local Redis on 127.0.0.1:6379"
      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log" >/dev/null
      for _ in $(seq 1 50); do redis_ping && break; sleep 0.1; done
      redis_ping || die "Redis did not start; see $RUN_DIR/redis.log" ;;
    *) die "Redis at REDIS_URL is not reachable" ;;
  esac
fi

# --- PostgreSQL + PostGIS --------------------------------------------------------
pg_url_for() {  # the libpq URL (no "postgis" scheme) of DATABASE_URL, with another database name
  "$PY" - "$DATABASE_URL" "$1" <<'PYEOF'
import sys
from urllib.parse import urlsplit, urlunsplit
parts = urlsplit(sys.argv[1])
print(urlunsplit(("postgresql", parts.netloc, "/" + sys.argv[2] if sys.argv[2] else parts.path, parts.query, "")))
PYEOF
}
db_name=$("$PY" -c "import sys; from urllib.parse import urlsplit; print(urlsplit(sys.argv[1]).path.lstrip('/'))" "$DATABASE_URL")
pg_ok() { psql "$(pg_url_for postgres)" -XtAqc 'select 1' >/dev/null 2>&1; }

local_pg=0
case "$DATABASE_URL" in *@127.0.0.1:5432/*|*@localhost:5432/*|*@127.0.0.1/*|*@localhost/*) local_pg=1 ;; esac

if ! pg_ok && [ $local_pg -eq 1 ]; then
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql
  fi
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  if command -v pg_lsclusters >/dev/null && ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster "$version" main start
  fi
  for _ in $(seq 1 50); do pg_ok && break; sleep 0.2; done
  if ! pg_ok; then
    # A packaged PostgreSQL asks for a password over TCP: give the project its own role.
    log "creating the local PostgreSQL role 'smartcity'"
    runuser -u postgres -- psql -Xq -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='smartcity') THEN CREATE ROLE smartcity LOGIN SUPERUSER PASSWORD 'smartcity'; END IF; END\$\$;"
    export DATABASE_URL="postgis://smartcity:smartcity@127.0.0.1:5432/${db_name}"
    grep -v '^DATABASE_URL=' "$RUN_DIR/local.env" 2>/dev/null > "$RUN_DIR/local.env.tmp" || true
    echo "DATABASE_URL=$DATABASE_URL" >> "$RUN_DIR/local.env.tmp"
    mv "$RUN_DIR/local.env.tmp" "$RUN_DIR/local.env"
  fi
fi
pg_ok || die "PostgreSQL at DATABASE_URL is not reachable"

if [ $local_pg -eq 1 ]; then
  server_major=$(psql "$(pg_url_for postgres)" -XtAqc 'show server_version_num' | cut -c1-2)
  apt_install "postgresql-${server_major}-postgis-3"
fi
# postgis is not a trusted extension: create it in template1 so that test databases
# (created from template1) have it even for a role that may not create extensions.
psql "$(pg_url_for template1)" -XtAqc 'CREATE EXTENSION IF NOT EXISTS postgis' >/dev/null 2>&1 || true
if ! psql "$(pg_url_for postgres)" -XtAqc "select 1 from pg_database where datname='${db_name}'" | grep -q 1; then
  log "creating database ${db_name}"
  psql "$(pg_url_for postgres)" -XtAqc "CREATE DATABASE \"${db_name}\""
fi
psql "$(pg_url_for "$db_name")" -XtAqc 'CREATE EXTENSION IF NOT EXISTS postgis' >/dev/null
log "provisioned: PostgreSQL+PostGIS, Redis, .venv"
