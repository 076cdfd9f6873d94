"""Django admin for centres and cameras: pages load, maps are local, secrets stay hidden."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEntry

SECRET_URL = "rtsp://admin:Sup3rS3cret@10.20.30.40:554/Streaming/Channels/101"


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("boss", "boss@example.test", "pw-long-enough-123")
    client.force_login(user)
    return client


@pytest.fixture
def secret_camera(center_factory, camera_factory):
    center = center_factory("junggu", (126.96, 37.54, 127.03, 37.58))
    return camera_factory(lat=37.5663, lon=126.9779, center=center, stream_url=SECRET_URL)


@pytest.mark.parametrize(
    "url", ["/admin/cameras/center/", "/admin/cameras/camera/", "/admin/cameras/camera/add/"]
)
def test_admin_list_and_add_pages_load(admin_client, secret_camera, url):
    response = admin_client.get(url)
    assert response.status_code == 200


def test_center_change_page_has_a_leaflet_map_served_from_static_files(admin_client, secret_camera):
    response = admin_client.get(f"/admin/cameras/center/{secret_camera.center_id}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "cdn" not in html.lower()  # no CDN: the widget must work offline
    assert "MultiPolygon" in html
    script = re.search(r'src="(/static/leaflet/leaflet(?:\.[0-9a-f]+)?\.js)"', html)
    assert script, "the Leaflet library is not loaded from our static files"
    served = admin_client.get(script.group(1))
    assert served.status_code == 200
    assert b"Leaflet" in b"".join(served.streaming_content)


def test_camera_change_page_never_contains_the_stream_credentials(admin_client, secret_camera):
    response = admin_client.get(f"/admin/cameras/camera/{secret_camera.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Sup3rS3cret" not in html
    assert "rtsp://***@10.20.30.40:554/Streaming/Channels/101" in html


def test_camera_changelist_does_not_leak_credentials(admin_client, secret_camera):
    html = admin_client.get("/admin/cameras/camera/").content.decode()
    assert secret_camera.code in html
    assert "Sup3rS3cret" not in html


def test_saving_a_camera_without_retyping_the_url_keeps_it(admin_client, secret_camera):
    page = admin_client.get(f"/admin/cameras/camera/{secret_camera.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["name"] = "Renamed"
    data["stream_url"] = ""
    data["location"] = secret_camera.location.geojson

    response = admin_client.post(f"/admin/cameras/camera/{secret_camera.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    secret_camera.refresh_from_db()
    assert secret_camera.name == "Renamed"
    assert secret_camera.stream_url == SECRET_URL


def test_non_staff_user_cannot_open_the_camera_admin(client, secret_camera):
    user = get_user_model().objects.create_user("op", password="pw-long-enough-123")
    client.force_login(user)
    response = client.get("/admin/cameras/camera/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_remove_checkbox_clears_the_stream_url(admin_client, secret_camera):
    page = admin_client.get(f"/admin/cameras/camera/{secret_camera.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data |= {"stream_url": "", "clear_stream_url": "on", "location": secret_camera.location.geojson}

    response = admin_client.post(f"/admin/cameras/camera/{secret_camera.pk}/change/", data)

    assert response.status_code == 302
    secret_camera.refresh_from_db()
    assert secret_camera.stream_url == ""


def test_admin_changes_to_a_camera_are_audited_with_field_names_never_values(admin_client, secret_camera):
    page = admin_client.get(f"/admin/cameras/camera/{secret_camera.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data |= {"name": "새 이름", "stream_url": "rtsp://admin:n3w-pass@10.0.0.9/stream1"}
    data["location"] = secret_camera.location.geojson

    response = admin_client.post(f"/admin/cameras/camera/{secret_camera.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors

    entry = AuditEntry.objects.get(action="admin.change", object_type="camera")
    assert entry.object_id == str(secret_camera.pk)
    assert {"name", "stream_url"} <= set(entry.details["changed"])
    assert "n3w-pass" not in json.dumps(entry.details)
