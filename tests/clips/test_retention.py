"""Retention: the purge destroys exactly the expired clips without a legal hold, once."""

from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from django.core.management import call_command
from django.db import connections

from audit.models import AuditEntry
from audit.verify import audit_chain_verify
from cameras.clips import ClipError, clip_legal_hold_clear, clip_legal_hold_set
from cameras.models import Clip, ClipStatus
from cameras.retention import clips_due_soon, clips_purge_expired
from incidents.models import IncidentStatus
from smartcity.celery import app as celery_app
from tests.clips.conftest import incident_at, make_clip, operator_of

PAST = dt.timedelta(hours=-1)
FUTURE = dt.timedelta(days=3)


@pytest.fixture
def mixed_clips(camera, clip_storage):
    return {
        "expired": [make_clip(camera, clip_storage, expires_in=PAST) for _ in range(3)],
        "held": make_clip(camera, clip_storage, expires_in=PAST, legal_hold=True),
        "future": make_clip(camera, clip_storage, expires_in=FUTURE),
        "gone": make_clip(camera, clip_storage, expires_in=PAST * 48, destroyed=True),
    }


def test_purge_destroys_exactly_the_expired_clips_without_a_hold(mixed_clips, clip_storage):
    expired = mixed_clips["expired"]
    files = {clip.pk: clip_storage / clip.file for clip in expired}

    result = clips_purge_expired(batch_size=2)

    assert result.destroyed == 3
    assert result.files_removed == 3
    for clip in expired:
        clip.refresh_from_db()
        assert clip.destroyed_at is not None
        assert clip.status == ClipStatus.DESTROYED
        assert not files[clip.pk].exists()
    for key in ("held", "future"):
        kept = Clip.objects.get(pk=mixed_clips[key].pk)
        assert kept.destroyed_at is None
        assert (clip_storage / kept.file).exists()
    assert Clip.objects.count() == 6  # rows are kept: the ledger points at them


def test_each_destruction_is_audited_with_the_file_hash_and_officer_system(mixed_clips):
    clips_purge_expired()

    entries = AuditEntry.objects.filter(action="clip.destroyed").order_by("id")
    assert [int(e.object_id) for e in entries] == sorted(c.pk for c in mixed_clips["expired"])
    for entry in entries:
        clip = Clip.objects.get(pk=entry.object_id)
        assert entry.actor == "system"
        assert entry.details["sha256"] == clip.sha256
        assert entry.details["file"] == clip.file
        assert entry.details["camera_id"] == clip.camera_id
    assert audit_chain_verify().intact


def test_running_the_purge_twice_is_harmless(mixed_clips):
    clips_purge_expired()
    before = AuditEntry.objects.count()

    again = clips_purge_expired()

    assert again.destroyed == 0
    assert AuditEntry.objects.count() == before


def test_a_file_that_is_already_gone_still_gets_its_row_marked(camera, clip_storage):
    clip = make_clip(camera, clip_storage, expires_in=PAST)
    (clip_storage / clip.file).unlink()

    result = clips_purge_expired()

    assert (result.destroyed, result.files_removed) == (1, 0)
    clip.refresh_from_db()
    assert clip.destroyed_at is not None


def test_a_file_path_outside_the_storage_is_never_touched(camera, clip_storage, tmp_path):
    outsider = tmp_path / "precious.txt"
    outsider.write_text("keep me")
    clip = make_clip(camera, clip_storage, expires_in=PAST)
    Clip.objects.filter(pk=clip.pk).update(file="../precious.txt")

    clips_purge_expired()

    assert outsider.read_text() == "keep me"


def test_dry_run_lists_and_changes_nothing(mixed_clips):
    out = io.StringIO()

    call_command("purge_footage", "--dry-run", stdout=out)

    assert "3 clips would be destroyed" in out.getvalue()
    for clip in mixed_clips["expired"]:
        assert f"clip #{clip.pk}" in out.getvalue()
    assert not Clip.objects.filter(
        pk__in=[c.pk for c in mixed_clips["expired"]], destroyed_at__isnull=False
    ).exists()
    assert not AuditEntry.objects.filter(action="clip.destroyed").exists()


def test_purge_footage_command_destroys(mixed_clips):
    out = io.StringIO()

    call_command("purge_footage", stdout=out)

    assert "destroyed 3 clips" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_two_purges_at_once_destroy_each_clip_exactly_once(camera, clip_storage):
    clips = [make_clip(camera, clip_storage, expires_in=PAST) for _ in range(60)]
    results = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            barrier.wait()
            results.append(clips_purge_expired(batch_size=7))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors
    assert sum(r.destroyed for r in results) == len(clips)
    destroyed = AuditEntry.objects.filter(action="clip.destroyed").values_list("object_id", flat=True)
    assert sorted(map(int, destroyed)) == sorted(c.pk for c in clips)  # once each
    assert audit_chain_verify().intact


def test_the_purge_is_in_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["cameras-purge-footage"]
    celery_app.loader.import_default_modules()

    assert entry["task"] == "cameras.tasks.purge_footage"
    assert entry["task"] in celery_app.tasks
    assert float(entry["schedule"]) > 0


# -- legal hold ------------------------------------------------------------------------


def test_a_legal_hold_needs_a_reason_and_is_audited(camera, clip_storage, centre, django_user_model):
    officer = django_user_model.objects.create_user("officer")
    clip = make_clip(camera, clip_storage, expires_in=PAST)

    with pytest.raises(ClipError, match="reason"):
        clip_legal_hold_set(clip_id=clip.pk, user=officer, reason="   ")
    clip_legal_hold_set(clip_id=clip.pk, user=officer, reason="경찰 수사 요청 2026-77")

    assert clips_purge_expired().destroyed == 0
    entry = AuditEntry.objects.get(action="clip.legal_hold_set")
    assert (entry.actor, entry.details["reason"], entry.object_id) == (
        "user:officer",
        "경찰 수사 요청 2026-77",
        str(clip.pk),
    )

    with pytest.raises(ClipError, match="reason"):
        clip_legal_hold_clear(clip_id=clip.pk, user=officer, reason="")
    clip_legal_hold_clear(clip_id=clip.pk, user=officer, reason="수사 종결")

    assert AuditEntry.objects.get(action="clip.legal_hold_cleared").details["reason"] == "수사 종결"
    assert clips_purge_expired().destroyed == 1


def test_admin_legal_hold_requires_a_reason(admin_client, camera, clip_storage):
    clip = make_clip(camera, clip_storage, expires_in=FUTURE)
    url = f"/admin/cameras/clip/{clip.pk}/change/"
    assert admin_client.get(url).status_code == 200

    refused = admin_client.post(url, {"legal_hold": "on", "hold_change_reason": ""})
    assert refused.status_code == 200  # the form again, with the error
    assert not Clip.objects.get(pk=clip.pk).legal_hold

    admin_client.post(url, {"legal_hold": "on", "hold_change_reason": "court order"})
    clip.refresh_from_db()
    assert clip.legal_hold and clip.legal_hold_reason == "court order"
    assert AuditEntry.objects.filter(action="clip.legal_hold_set", object_id=str(clip.pk)).exists()
    assert admin_client.post(f"/admin/cameras/clip/{clip.pk}/delete/").status_code == 403


# -- the dashboard warning -------------------------------------------------------------


def test_clips_due_within_a_day_of_open_incidents_are_warned_about(
    centre, other_centre, camera, clip_storage, client
):
    operator = operator_of(centre, "op-a")
    open_incident = incident_at(centre)
    closed_incident = incident_at(centre, status=IncidentStatus.CLOSED)
    elsewhere = incident_at(other_centre)
    due = make_clip(camera, clip_storage, expires_in=dt.timedelta(hours=5), incident=open_incident)
    make_clip(camera, clip_storage, expires_in=dt.timedelta(hours=5), incident=closed_incident)
    make_clip(camera, clip_storage, expires_in=dt.timedelta(hours=30), incident=open_incident)
    make_clip(camera, clip_storage, expires_in=dt.timedelta(hours=5), incident=open_incident, legal_hold=True)
    make_clip(camera, clip_storage, expires_in=dt.timedelta(hours=5), incident=elsewhere)

    assert [c.pk for c in clips_due_soon(user=operator)] == [due.pk]

    client.force_login(operator)
    body = client.get("/cameras/clips/due-soon.json").json()
    assert [c["id"] for c in body["clips"]] == [due.pk]


def test_the_warning_include_renders_for_the_user(centre, camera, clip_storage, rf):
    from django.template import Context, Template

    operator = operator_of(centre, "op-a")
    due = make_clip(camera, clip_storage, expires_in=dt.timedelta(hours=5), incident=incident_at(centre))
    request = rf.get("/")
    request.user = operator

    html = Template("{% load clips %}{% clips_due_warning %}").render(Context({"request": request}))

    assert f"#{due.pk}" in html
    assert camera.code in html
