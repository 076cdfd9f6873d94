"""Tells drf-spectacular how partners authenticate, so /api/docs/ offers the Bearer key."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class PartnerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "partners.auth.PartnerKeyAuthentication"
    name = "PartnerKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "API key from `manage.py partner_key <slug>`. Partners with a signing "
            "secret also send X-Timestamp and X-Signature: sha256=<HMAC of '<timestamp>.<raw body>'>.",
        }
