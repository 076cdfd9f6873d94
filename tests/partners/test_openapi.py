"""The OpenAPI schema and its docs page, served without any CDN."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_schema_describes_the_partner_endpoints(client):
    response = client.get("/api/schema/?format=json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/events/", "/api/v1/events/{incident_id}/", "/api/v1/cap/"} <= set(paths)
    assert "post" in paths["/api/v1/events/{incident_id}/locations/"]


def test_docs_page_loads_its_assets_from_our_own_static_files(client):
    response = client.get("/api/docs/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "cdn" not in html.lower()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any("swagger-ui" in asset for asset in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
