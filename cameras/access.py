"""Who may watch a camera: the one place the live video socket (and later the snapshot) asks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from cameras.models import Camera
from incidents.selectors import watched_center_ids
from partners.models import ShareCamera
from partners.selectors import address_allowed, share_by_token


def camera_viewable_by(user: AbstractBaseUser | AnonymousUser, camera: Camera) -> bool:
    """An operator or supervisor of the camera's centre, or an administrator (every centre)."""
    if not user.is_authenticated:
        return False
    centers = watched_center_ids(user)
    if centers is None:
        return True
    return camera.center_id is not None and camera.center_id in centers


@dataclass(frozen=True)
class ShareGrant:
    """A partner viewer's right to one camera through one share, until `expires_at`."""

    share_id: int
    incident_id: int
    partner_id: int
    partner_slug: str
    expires_at: dt.datetime


def share_grant(token: str, camera_id: int, address: str | None = None) -> ShareGrant | None:
    """The grant if `token` opens an active share that includes the camera, from `address`.

    `address` None skips the agreement's IP ranges (callers that have no address).
    """
    share = share_by_token(token)
    if share is None or not share.is_active():
        return None
    if address is not None and not address_allowed(agreement=share.agreement, address=address):
        return None
    if not ShareCamera.objects.filter(share=share, camera_id=camera_id).exists():
        return None
    return ShareGrant(
        share_id=share.pk,
        incident_id=share.incident_id,
        partner_id=share.partner_id,
        partner_slug=share.partner.slug,
        expires_at=share.expires_at,
    )


def share_allows(token: str, camera_id: int) -> bool:
    """Whether an active share with this token covers the camera (its IP ranges aside)."""
    return share_grant(token, camera_id) is not None
