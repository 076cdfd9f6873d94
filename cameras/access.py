"""Who may watch a camera: the one place the live video socket (and later the snapshot) asks."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from cameras.models import Camera
from incidents.selectors import watched_center_ids


def camera_viewable_by(user: AbstractBaseUser | AnonymousUser, camera: Camera) -> bool:
    """An operator or supervisor of the camera's centre, or an administrator (every centre)."""
    if not user.is_authenticated:
        return False
    centers = watched_center_ids(user)
    if centers is None:
        return True
    return camera.center_id is not None and camera.center_id in centers


def share_allows(token: str, camera_id: int) -> bool:
    """Whether an active share with this token covers the camera: always False for now.

    Partner shares (`?share=<token>` on the live socket) arrive with issue 6 (sharing);
    until then no token opens any camera.
    """
    return False
