"""The words the live video player (`static/js/player.js`) writes over the picture.

The player has no translation catalogue of its own: pages render these through
`json_script` as `#player-labels` (see `templates/cameras/player_assets.html`), already in
the viewer's language. Korean is the player's fallback when a page forgets them.
"""

from __future__ import annotations

from django import template
from django.utils.translation import gettext

register = template.Library()


@register.simple_tag
def player_labels() -> dict[str, str]:
    """Status words and refusal reasons, keyed as the player's states and close codes."""
    return {
        "connecting": gettext("Connecting…"),
        "live": gettext("Live"),
        "offline": gettext("Camera offline"),
        "refused": gettext("Refused"),
        "unauthenticated": gettext("Log in again to watch"),
        "forbidden": gettext("Not allowed to watch this camera"),
        "not_found": gettext("No such camera"),
        "unsupported": gettext("Codec not supported"),
        "no_mse": gettext("This browser cannot play live video"),
    }
