"""Template tags of the operator dashboard: the map's tile URL and the labels its script shows.

The dashboard's script has no build step and no translation catalogue of its own: the
page hands it these values through `json_script`, already in the operator's language.
"""

from __future__ import annotations

from django import template
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils.translation import pgettext

from incidents.selectors import watched_center_ids

register = template.Library()


@register.simple_tag
def map_tile_url() -> str:
    """The tile server (MAP_TILE_URL). When it is unreachable the map falls back to a plain background."""
    return str(settings.MAP_TILE_URL)


@register.simple_tag
def watches_incidents(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether `user` has a centre's incidents to watch (the socket refuses everyone else)."""
    return watched_center_ids(user) != []


def labels_status() -> dict[str, str]:
    return {
        "new": pgettext("dashboard", "new"),
        "acknowledged": pgettext("dashboard", "acknowledged"),
        "dispatched": pgettext("dashboard", "dispatch requested"),
        "closed": pgettext("dashboard", "closed"),
        "cancelled": pgettext("dashboard", "cancelled"),
    }


def labels_timeline() -> dict[str, str]:
    return {
        "received": pgettext("dashboard", "received"),
        "location": pgettext("dashboard", "location update"),
        "cancelled": pgettext("dashboard", "cancelled by partner"),
        "acknowledged": pgettext("dashboard", "acknowledged"),
        "assigned": pgettext("dashboard", "assigned"),
        "note": pgettext("dashboard", "note"),
        "dispatch": pgettext("dashboard", "dispatch requested"),
        "closed": pgettext("dashboard", "closed"),
        "escalated": pgettext("dashboard", "escalated"),
        "share": pgettext("dashboard", "video share"),
    }


def labels_outcome() -> dict[str, str]:
    return {
        "resolved": pgettext("dashboard", "resolved"),
        "false_alarm": pgettext("dashboard", "false alarm"),
        "handed_over": pgettext("dashboard", "handed over"),
        "duplicate": pgettext("dashboard", "duplicate"),
        "other": pgettext("dashboard", "other"),
    }


def labels_camera() -> dict[str, str]:
    return {
        "online": pgettext("dashboard", "online"),
        "offline": pgettext("dashboard", "offline"),
        "unknown": pgettext("dashboard", "unknown"),
    }


def labels_messages() -> dict[str, str]:
    # `%(by)s`, `%(id)s` … are filled in by the script.
    return {
        "connected": pgettext("dashboard", "Connected"),
        "reconnecting": pgettext("dashboard", "Reconnecting…"),
        "forbidden": pgettext("dashboard", "No centre to watch"),
        "already_acknowledged": pgettext("dashboard", "%(by)s already acknowledged this incident"),
        "escalated_banner": pgettext("dashboard", "Escalated: #%(id)s %(label)s — not acknowledged in time"),
        "escalated": pgettext("dashboard", "escalated"),
        "outside": pgettext("dashboard", "outside every jurisdiction"),
        "offline_map": pgettext("dashboard", "Map tiles unavailable: offline map"),
        "failed": pgettext("dashboard", "The action failed: %(error)s"),
        "network": pgettext("dashboard", "No answer from the server. Try again."),
        "done": pgettext("dashboard", "Done"),
        "no_cameras": pgettext("dashboard", "No cameras within range."),
        "no_timeline": pgettext("dashboard", "Nothing recorded yet."),
        "sound_on": pgettext("dashboard", "Sound on"),
        "sound_off": pgettext("dashboard", "Sound off"),
        "sound_locked": pgettext("dashboard", "Click to enable sound"),
        "note_empty": pgettext("dashboard", "Write a note first."),
        "choose_outcome": pgettext("dashboard", "Choose an outcome."),
        "unassigned": pgettext("dashboard", "unassigned"),
        "assignee": pgettext("dashboard", "assigned to"),
        "clip_last": pgettext("dashboard", "Save last 30 s"),
        "clip_next": pgettext("dashboard", "Save next 30 s"),
        "clip_saving": pgettext("dashboard", "Saving the clip of %(camera)s…"),
        "clip_failed": pgettext("dashboard", "The clip was not saved: %(error)s"),
    }


@register.simple_tag
def dashboard_labels() -> dict[str, dict[str, str]]:
    """Every word the dashboard's script writes on screen, in the active language."""
    return {
        "status": labels_status(),
        "timeline": labels_timeline(),
        "outcome": labels_outcome(),
        "camera": labels_camera(),
        "msg": labels_messages(),
    }
