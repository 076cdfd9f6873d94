"""Production defaults: with DEBUG off and only a SECRET_KEY given, `check --deploy` is clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# HSTS preload is a decision to submit the city's domain to browsers' preload list,
# which only its operators can make once TLS is in place.
ALLOWED = {"security.W021"}


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "DATABASE_URL": os.environ["DATABASE_URL"]}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_production_defaults():
    result = run_check(SECRET_KEY="k" * 20 + "-production-like-secret-key-abcdefghijklmnop")
    reported = {line.split(")")[0].split("(")[-1] for line in result.stderr.splitlines() if ": (" in line}
    assert reported <= ALLOWED, result.stderr


def test_server_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = run_check()
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
