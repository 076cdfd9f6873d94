"""`{% load clips %}{% clips_due_warning %}`: the dashboard's warning about footage about to be purged."""

from __future__ import annotations

from typing import Any

from django import template

from cameras.retention import clips_due_soon

register = template.Library()


@register.inclusion_tag("cameras/_clips_due.html", takes_context=True)
def clips_due_warning(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    clips = list(clips_due_soon(user=user)[:20]) if user is not None and user.is_authenticated else []
    return {"clips_due": clips}
