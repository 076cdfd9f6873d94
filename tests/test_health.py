"""`GET /healthz`: 200 only when database, Redis, a Celery worker and the relay are up."""

from __future__ import annotations

import pytest

from tests.fixtures.celery_worker import celery_worker  # noqa: F401  (fixture)


@pytest.mark.django_db
def test_healthz_is_200_when_every_part_is_up(client, celery_worker):  # noqa: F811
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name for name, check in body["checks"].items() if check["ok"]} == {
        "database",
        "redis",
        "celery",
        "relay",
    }
    assert celery_worker.hostname in body["checks"]["celery"]["workers"]


@pytest.mark.django_db
def test_healthz_is_503_naming_the_worker_when_it_stops(client, celery_worker):  # noqa: F811
    assert client.get("/healthz").status_code == 200

    celery_worker.stop()
    response = client.get("/healthz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["celery"]["ok"] is False
    assert checks["database"]["ok"] is True


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_unreachable(client, settings):
    from smartcity.celery import app as celery_app

    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.REDIS_URL = dead
    original_broker = celery_app.conf.broker_url
    celery_app.conf.update(broker_url=dead)
    try:
        response = client.get("/healthz")
    finally:
        celery_app.conf.update(broker_url=original_broker)

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False
    assert checks["celery"]["ok"] is False
    assert checks["database"]["ok"] is True
    assert "127.0.0.1:1" not in response.content.decode()  # no connection details leak


@pytest.mark.django_db
def test_healthz_only_answers_get(client):
    assert client.post("/healthz").status_code == 405
