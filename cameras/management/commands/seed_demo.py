"""`python manage.py seed_demo`: load the demo data of every app, idempotently."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.core.management.base import BaseCommand

# Each app with demo rows adds its seeder here; they run in this order.
SEEDERS = ["cameras.demo", "partners.demo"]


class Command(BaseCommand):
    help = "Create or refresh the demo centres, cameras, users and partners (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        for module_name in SEEDERS:
            import_module(module_name).seed(stdout_write=self.stdout.write)
