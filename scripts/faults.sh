#!/usr/bin/env bash
# `make faults`: the fault suite alone — real Redis, PostgreSQL, RTSP servers and Celery
# workers killed and restarted under load (tests/faults/, marker `faults`). Each test
# starts private servers on free ports for what it breaks; the shared PostgreSQL and
# Redis are only used as the test database and broker, never stopped.
# `make test` runs these too; leave them out there with `scripts/test.sh -m "not faults"`.
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$ROOT/scripts/provision.sh" --test
cd "$ROOT"
use_test_env
log "fault suite"
# The in-process camera-outage test (shortened reconnect schedule) belongs to the story
# too; tests/faults/test_rtsp_killed.py is its end-to-end twin with production timings.
"$VENV/bin/pytest" tests/faults \
  "tests/video/test_live_socket.py::test_viewers_hear_offline_then_resume_by_themselves_when_the_camera_returns" \
  --durations=10 "$@"
