"""Login bookkeeping: audit every login, remember sessions so they can all be ended at once.

Django's login view announces logins only through signals, so these receivers are the
thin hook; the work is in the plain functions below.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest

from audit.services import audit_record
from cameras.models import StaffSession

log = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def client_address(request: HttpRequest | None) -> str:
    return "" if request is None else str(request.META.get("REMOTE_ADDR", ""))


@receiver(user_logged_in)
def on_login(sender: Any, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any) -> None:
    if request is not None and request.session.session_key:
        StaffSession.objects.update_or_create(
            session_key=request.session.session_key,
            defaults={"user": user, "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200]},
        )
    audit_record(
        action="auth.login",
        actor=f"user:{user.get_username()}",
        user_id=user.pk,
        details={"address": client_address(request)},
        request_id=str(getattr(request, "request_id", "")),
    )


@receiver(user_logged_out)
def on_logout(sender: Any, request: HttpRequest | None, user: AbstractBaseUser | None, **kwargs: Any) -> None:
    if request is not None and request.session.session_key:
        StaffSession.objects.filter(session_key=request.session.session_key).delete()


@receiver(user_login_failed)
def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Only the user name: `credentials` also holds the password, which must never be stored.
    audit_record(
        action="auth.login_failed",
        actor="anonymous",
        details={"username": str(credentials.get("username", ""))[:150], "address": client_address(request)},
        request_id=str(getattr(request, "request_id", "")),
    )


def session_store(session_key: str) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key)


def sessions_end_all(*, user: AbstractBaseUser) -> int:
    """End every session of `user` on every device, and close their open dashboards."""
    with transaction.atomic():
        keys = list(StaffSession.objects.filter(user_id=user.pk).values_list("session_key", flat=True))
        for key in keys:
            session_store(key).delete()
        StaffSession.objects.filter(user_id=user.pk).delete()
        audit_record(
            action="auth.logout_everywhere",
            actor=f"user:{user.get_username()}",
            user_id=user.pk,
            details={"sessions": len(keys)},
        )
    layer = get_channel_layer()
    if layer is not None:
        try:
            async_to_sync(layer.group_send)(user_group(user.pk), {"type": "session.ended"})
        except Exception:  # the sessions are gone: a reconnecting socket is refused anyway
            log.warning("could not tell open dashboards of %s to close", user.pk, exc_info=True)
    return len(keys)
