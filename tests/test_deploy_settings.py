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


def reported_checks(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The check ids `check --deploy` reported; fails if the command never got to checking."""
    assert "System check identified" in result.stdout + result.stderr, result.stderr
    return {line.split(")")[0].split("(")[-1] for line in result.stderr.splitlines() if ": (" in line}


def test_check_deploy_is_clean_with_production_defaults():
    result = run_check(SECRET_KEY="k" * 20 + "-production-like-secret-key-abcdefghijklmnop")
    assert reported_checks(result) <= ALLOWED, result.stderr


def test_server_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = run_check()
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


# What the production recipe sets behind nginx (docker-compose.yml, README "Production").
BEHIND_PROXY = {
    "SECRET_KEY": "p" * 20 + "-behind-the-proxy-secret-key-abcdefghijklmnop",
    "SECURE_PROXY_SSL_HEADER": "true",
    "TRUSTED_PROXY_COUNT": "1",
    "ALLOWED_HOSTS": "cctv.example.go.kr,testserver",
    "CSRF_TRUSTED_ORIGINS": "https://cctv.example.go.kr",
    "PUBLIC_BASE_URL": "https://cctv.example.go.kr",
    "LOG_FORMAT": "json",
}


def test_check_deploy_is_clean_behind_the_tls_proxy():
    result = run_check(**BEHIND_PROXY)
    assert reported_checks(result) <= ALLOWED, result.stderr


# Run in a fresh process with the behind-proxy environment: settings are read at start-up.
PROXIED_REQUESTS = """
from django.test import Client
client = Client()
plain = client.get("/login/")
proxied = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
print(plain.status_code, plain.headers.get("Location"))
print(proxied.status_code, proxied.headers.get("Strict-Transport-Security"))
print(proxied.cookies["csrftoken"]["secure"])
"""


def test_behind_the_proxy_plain_http_is_redirected_and_forwarded_https_gets_hsts():
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PROXIED_REQUESTS],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DATABASE_URL": os.environ["DATABASE_URL"]} | BEHIND_PROXY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    plain, proxied, secure_cookie = result.stdout.splitlines()[-3:]
    # Straight to Daphne without the proxy's header: sent to https, never served in clear.
    assert plain == "301 https://testserver/login/"
    # Through the proxy (X-Forwarded-Proto: https): served, with HSTS and a TLS-only cookie.
    assert proxied == "200 max-age=31536000; includeSubDomains"
    assert secure_cookie == "True"


def settings_value(expression: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`expression` evaluated on django.conf.settings in a fresh process with exactly `env`."""
    code = f"from django.conf import settings; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "smartcity.settings"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_secrets_can_come_from_files_instead_of_the_environment(tmp_path):
    files = {
        "SECRET_KEY": "file-secret-key-" + "s" * 40,
        "SHARE_TOKEN_SECRET": "file-share-token-secret-" + "t" * 30,
        "DATABASE_URL": "postgis://safenet:from-a-file@db.internal:5432/safenet",
        "METRICS_TOKEN": "file-metrics-token",
    }
    env = {}
    for name, value in files.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")  # as `echo "$secret" > file` leaves it
        path.chmod(0o400)
        env[f"{name}_FILE"] = str(path)

    result = settings_value(
        "settings.SECRET_KEY, settings.SHARE_TOKEN_SECRET, settings.DATABASES['default']['PASSWORD'], "
        "settings.DATABASES['default']['HOST'], settings.METRICS_TOKEN, sep='|'",
        **env,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("|") == [
        files["SECRET_KEY"],
        files["SHARE_TOKEN_SECRET"],
        "from-a-file",
        "db.internal",
        files["METRICS_TOKEN"],
    ]


def test_a_secret_given_both_ways_or_in_an_unreadable_file_stops_the_start(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("from-the-file-" + "x" * 40)

    both = settings_value(
        "settings.SECRET_KEY", SECRET_KEY="from-the-env-" + "y" * 40, SECRET_KEY_FILE=str(key_file)
    )
    missing = settings_value("settings.SECRET_KEY", SECRET_KEY_FILE=str(tmp_path / "nope"))

    assert both.returncode != 0
    assert "Set SECRET_KEY or SECRET_KEY_FILE, not both" in both.stderr
    assert missing.returncode != 0
    assert "SECRET_KEY_FILE: cannot read" in missing.stderr
    # Neither value is ever echoed into the error.
    assert "from-the-file" not in both.stderr + missing.stderr
    assert "from-the-env" not in both.stderr + missing.stderr
