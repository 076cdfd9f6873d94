"""Saving clips from real RTSP cameras, the operator endpoint, and audited downloads."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import time

import pytest
from django.test import Client

from audit.models import AuditEntry
from cameras.clips import clip_record, clip_request
from cameras.models import Clip, ClipStatus
from incidents.models import IncidentStatus
from tests.clips.conftest import incident_at, make_clip, operator_of
from tests.fixtures.celery_worker import celery_worker  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def ffprobe(path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def decodes_cleanly(path) -> bool:
    run = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return run.returncode == 0 and not run.stderr.strip()


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def live_camera(camera, rtsp_server):
    camera.stream_url = rtsp_server.url(1)
    camera.save(update_fields=["stream_url"])
    return camera


@pytest.mark.rtsp
def test_a_clip_from_a_real_rtsp_stream_is_a_playable_mp4_of_about_the_asked_length(
    centre, live_camera, clip_storage
):
    operator = operator_of(centre, "op-a")
    incident = incident_at(centre)
    requested = clip_request(user=operator, incident_id=incident.pk, camera_id=live_camera.pk, seconds=4)

    clip = clip_record(clip_id=requested.pk)

    assert clip is not None and clip.status == ClipStatus.READY, clip and clip.error
    assert clip.period_start is not None and clip.period_end is not None
    path = clip_storage / clip.file
    probe = ffprobe(path)
    assert probe["format"]["format_name"].startswith("mov,mp4")
    assert float(probe["format"]["duration"]) == pytest.approx(4.0, abs=0.5)
    (video,) = probe["streams"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 480)
    assert decodes_cleanly(path)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: playable before it is all downloaded
    assert clip.sha256 == hashlib.sha256(data).hexdigest()
    assert clip.size_bytes == len(data)
    assert clip.period_end - clip.period_start == pytest.approx(
        dt.timedelta(seconds=4), abs=dt.timedelta(seconds=0.5)
    )
    assert clip.expires_at == clip.period_start + dt.timedelta(days=30)
    saved = AuditEntry.objects.get(action="clip.saved")
    assert (saved.actor, saved.details["sha256"], saved.details["incident_id"]) == (
        "user:op-a",
        clip.sha256,
        incident.pk,
    )
    assert not (clip_storage / "partial").exists() or not any((clip_storage / "partial").iterdir())


@pytest.mark.rtsp
def test_recording_twice_is_harmless(centre, live_camera):
    operator = operator_of(centre, "op-a")
    clip = clip_request(
        user=operator, incident_id=incident_at(centre).pk, camera_id=live_camera.pk, seconds=1
    )
    first = clip_record(clip_id=clip.pk)

    again = clip_record(clip_id=clip.pk)

    assert again is not None and first is not None
    assert (again.status, again.sha256) == (ClipStatus.READY, first.sha256)
    assert AuditEntry.objects.filter(action="clip.saved").count() == 1


def test_a_camera_that_does_not_answer_fails_the_clip_with_a_reason(centre, camera, clip_storage):
    requested = clip_request(
        user=operator_of(centre, "op-a"), incident_id=incident_at(centre).pk, camera_id=camera.pk, seconds=2
    )

    clip = clip_record(clip_id=requested.pk)

    assert clip is not None and clip.status == ClipStatus.FAILED
    assert "camera stream failed" in clip.error
    assert "rtsp://" not in clip.error
    assert not AuditEntry.objects.filter(action="clip.saved").exists()


# -- the operator endpoint ----------------------------------------------------------------


def test_saving_a_clip_answers_202_with_its_id(centre, camera):
    client = logged_in(operator_of(centre, "op-a"))
    incident = incident_at(centre)

    response = client.post(
        f"/incidents/{incident.pk}/clips/",
        {"camera_id": camera.pk, "seconds": 10},
        content_type="application/json",
    )

    assert response.status_code == 202
    body = response.json()
    clip = Clip.objects.get(pk=body["id"])
    assert (clip.status, clip.requested_seconds, clip.incident_id) == (ClipStatus.PENDING, 10, incident.pk)
    status = client.get(body["status_url"]).json()
    assert status["status"] == "pending"
    listed = client.get(f"/incidents/{incident.pk}/clips/").json()["clips"]
    assert [c["id"] for c in listed] == [clip.pk]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"seconds": 10}, "camera_id"),
        ({"camera_id": "x", "seconds": 10}, "camera_id"),
        ({"camera_id": 1, "seconds": 0}, "seconds"),
        ({"camera_id": 1, "seconds": 100000}, "seconds"),
        ({"camera_id": 1, "seconds": "NaN"}, "seconds"),
        ({"camera_id": True, "seconds": 5}, "camera_id"),
    ],
)
def test_bad_clip_requests_are_400_and_write_nothing(centre, payload, field):
    client = logged_in(operator_of(centre, "op-a"))

    response = client.post(
        f"/incidents/{incident_at(centre).pk}/clips/", payload, content_type="application/json"
    )

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Clip.objects.exists()


def test_a_body_that_is_not_an_object_is_400(centre):
    client = logged_in(operator_of(centre, "op-a"))
    url = f"/incidents/{incident_at(centre).pk}/clips/"

    for body in ("[1, 2]", "{not json", '"text"'):
        assert client.post(url, body, content_type="application/json").status_code == 400


def test_clips_are_only_for_the_operators_own_centre(centre, other_centre, camera, camera_factory):
    outsider = logged_in(operator_of(other_centre, "op-b"))
    insider = logged_in(operator_of(centre, "op-a"))
    incident = incident_at(centre)
    foreign_camera = camera_factory(
        lat=37.4, lon=126.95, center=other_centre, stream_url="rtsp://127.0.0.1:9/x"
    )
    url = f"/incidents/{incident.pk}/clips/"

    assert outsider.post(url, {"camera_id": camera.pk}, content_type="application/json").status_code == 404
    assert (
        insider.post(url, {"camera_id": foreign_camera.pk}, content_type="application/json").status_code
        == 404
    )
    assert (
        insider.post(
            "/incidents/999999/clips/", {"camera_id": camera.pk}, content_type="application/json"
        ).status_code
        == 404
    )
    assert outsider.get(url).status_code == 404
    assert not Clip.objects.exists()


def test_closed_incidents_take_no_new_clips(centre, camera):
    client = logged_in(operator_of(centre, "op-a"))
    incident = incident_at(centre, status=IncidentStatus.CLOSED)

    response = client.post(
        f"/incidents/{incident.pk}/clips/", {"camera_id": camera.pk}, content_type="application/json"
    )

    assert response.status_code == 409


def test_the_endpoint_needs_login_and_csrf(centre, camera):
    incident = incident_at(centre)
    url = f"/incidents/{incident.pk}/clips/"
    assert Client().post(url, {"camera_id": camera.pk}).status_code == 302

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator_of(centre, "op-a"))
    assert strict.post(url, {"camera_id": camera.pk}).status_code == 403
    assert not Clip.objects.exists()


# -- downloads ----------------------------------------------------------------------------


def test_download_sends_the_file_and_audits_it(centre, camera, clip_storage):
    incident = incident_at(centre)
    clip = make_clip(
        camera, clip_storage, expires_in=dt.timedelta(days=3), incident=incident, content=b"\x00mp4 bytes"
    )
    client = logged_in(operator_of(centre, "op-a"))

    response = client.get(f"/cameras/clips/{clip.pk}/download/?reason=수사 자료")

    assert response.status_code == 200
    content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert content == b"\x00mp4 bytes"
    assert response["Content-Type"] == "video/mp4"
    assert "attachment" in response["Content-Disposition"]
    entry = AuditEntry.objects.get(action="clip.downloaded")
    assert (entry.actor, entry.object_id) == ("user:op-a", str(clip.pk))
    assert (
        entry.details | {"reason": "수사 자료", "incident_id": incident.pk, "sha256": clip.sha256}
        == entry.details
    )


def test_download_is_refused_to_others_and_for_clips_not_there(centre, other_centre, camera, clip_storage):
    clip = make_clip(camera, clip_storage, expires_in=dt.timedelta(days=3))
    gone = make_clip(camera, clip_storage, expires_in=dt.timedelta(days=-3), destroyed=True)
    pending = Clip.objects.create(camera=camera, requested_seconds=5, expires_at=clip.expires_at)
    operator = logged_in(operator_of(centre, "op-a"))

    assert Client().get(f"/cameras/clips/{clip.pk}/download/").status_code == 401
    assert Client().get(f"/cameras/clips/{clip.pk}/download/?share=guess").status_code == 401
    assert (
        logged_in(operator_of(other_centre, "op-b")).get(f"/cameras/clips/{clip.pk}/download/").status_code
        == 404
    )
    assert operator.get(f"/cameras/clips/{gone.pk}/download/").status_code == 410
    assert operator.get(f"/cameras/clips/{pending.pk}/download/").status_code == 409
    assert operator.get("/cameras/clips/999999/download/").status_code == 404
    assert not AuditEntry.objects.filter(action="clip.downloaded").exists()


# -- through a real Celery worker -----------------------------------------------------------


@pytest.fixture
def worker_storage(tmp_path, monkeypatch, settings):
    # Set before the worker starts: it reads its settings from the environment.
    path = tmp_path / "worker-clips"
    monkeypatch.setenv("CLIP_STORAGE_DIR", str(path))
    settings.CLIP_STORAGE_DIR = path
    return path


@pytest.mark.rtsp
@pytest.mark.django_db(transaction=True)
def test_a_requested_clip_is_recorded_by_the_celery_worker(
    worker_storage,
    centre,
    live_camera,
    celery_worker,  # noqa: F811
):
    client = logged_in(operator_of(centre, "op-a"))
    incident = incident_at(centre)

    response = client.post(
        f"/incidents/{incident.pk}/clips/",
        {"camera_id": live_camera.pk, "seconds": 2},
        content_type="application/json",
    )
    assert response.status_code == 202
    status_url = response.json()["status_url"]
    deadline = time.monotonic() + 40
    status = client.get(status_url).json()
    while status["status"] in ("pending", "recording") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = client.get(status_url).json()

    assert status["status"] == "ready", status
    clip = Clip.objects.get(pk=status["id"])
    assert float(ffprobe(worker_storage / clip.file)["format"]["duration"]) == pytest.approx(2.0, abs=0.5)
    download = client.get(status["download_url"])
    content = b"".join(download.streaming_content)  # type: ignore[attr-defined]
    assert hashlib.sha256(content).hexdigest() == status["sha256"]
