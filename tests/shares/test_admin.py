"""Shares and the webhook delivery log in the admin: readable, not editable, no token material."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from incidents.catalogue import PartnerKind
from incidents.services import incident_cameras_rank
from partners.models import Partner, WebhookDelivery, WebhookMessage
from partners.sharing import Trigger, share_decide, share_token
from tests.shares.conftest import incident_of

pytestmark = pytest.mark.django_db


def test_admin_lists_shares_and_delivery_attempts_read_only(partners, junggu, camera_factory, monkeypatch):
    monkeypatch.setattr("partners.webhooks.webhook_schedule", lambda pk, countdown=0: None)
    camera_factory(lat=37.5664, lon=126.9779, center=junggu)
    police = partners[PartnerKind.POLICE]
    Partner.objects.filter(pk=police.pk).update(webhook_url="https://police.example/hooks")
    police.refresh_from_db()
    incident = incident_of(police, junggu, "police.emergency_video")
    incident_cameras_rank(incident=incident, fresh=True)
    share = share_decide(incident=incident, partner=police, trigger=Trigger.EVENT).share
    assert share is not None
    message = WebhookMessage.objects.get()
    WebhookDelivery.objects.create(
        message=message, attempt=1, url="https://police.example/hooks", status_code=503
    )
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="pw-long-enough-123"))

    pages = [
        "/admin/partners/share/",
        f"/admin/partners/share/{share.pk}/change/",
        "/admin/partners/webhookmessage/",
        f"/admin/partners/webhookmessage/{message.pk}/change/",
        "/admin/partners/webhookdelivery/",
        f"/admin/partners/agreement/{share.agreement_id}/change/",
    ]
    for page in pages:
        response = admin.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert share.token_nonce not in html and share.token_hash not in html
        assert share_token(share.token_nonce) not in html
    assert admin.post(f"/admin/partners/share/{share.pk}/delete/").status_code == 403
