"""`python manage.py partner_key <partner-slug>`: issue, list or revoke a partner's API keys.

A new key is printed once, alone on the last line of stdout, so a script can take it
with `tail -n 1`; only its hash is stored.
"""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from partners.models import ApiKey, Partner
from partners.services import api_key_create, api_key_revoke


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name, e.g. a container with an anonymous uid
        return "cli"


class Command(BaseCommand):
    help = "Create an API key for a partner and print it once (or --list / --revoke PREFIX)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner", help="the partner's slug, e.g. police-112")
        parser.add_argument("--name", default="", help="a label for the new key, e.g. 'production'")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--revoke", metavar="PREFIX", help="revoke the partner's key with this prefix")
        action.add_argument("--list", action="store_true", help="list the partner's keys (never the keys)")

    def handle(self, *args: Any, **options: Any) -> None:
        partner = self.partner(options["partner"])
        if options["revoke"]:
            self.revoke(partner=partner, prefix=options["revoke"])
        elif options["list"]:
            self.list_keys(partner=partner)
        else:
            self.create(partner=partner, name=options["name"])

    def partner(self, slug: str) -> Partner:
        partner = Partner.objects.filter(slug=slug).first()
        if partner is None:
            known = ", ".join(Partner.objects.order_by("slug").values_list("slug", flat=True))
            raise CommandError(f"Unknown partner {slug!r}. Known partners: {known or '(none yet)'}")
        return partner

    def create(self, *, partner: Partner, name: str) -> None:
        key, raw = api_key_create(partner=partner, name=name, actor=cli_actor())
        self.stdout.write(
            f"Key for {partner.slug} (prefix {key.prefix}); store it now, it is not shown again."
        )
        if not partner.is_active:
            self.stdout.write(
                f"Note: {partner.slug} is inactive; its keys are refused until it is activated."
            )
        self.stdout.write(raw)

    def revoke(self, *, partner: Partner, prefix: str) -> None:
        key = ApiKey.objects.filter(partner=partner, prefix=prefix).first()
        if key is None:
            raise CommandError(f"{partner.slug} has no key with prefix {prefix!r} (see --list).")
        if key.revoked_at is not None:
            self.stdout.write(
                f"Key {prefix} of {partner.slug} was already revoked at {key.revoked_at:%Y-%m-%d %H:%M}."
            )
            return
        api_key_revoke(key=key, actor=cli_actor())
        self.stdout.write(f"Revoked key {prefix} of {partner.slug}.")

    def list_keys(self, *, partner: Partner) -> None:
        for key in partner.api_keys.order_by("created_at"):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            self.stdout.write(f"{key.prefix}  {state:<24}  last used {used:<16}  {key.name}")
