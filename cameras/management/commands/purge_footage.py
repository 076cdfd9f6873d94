"""`python manage.py purge_footage [--dry-run]`: destroy expired clips now (what the beat task does)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from cameras.retention import clips_due_iter, clips_purge_expired

DRY_RUN_LISTED = 50


class Command(BaseCommand):
    help = "Destroy saved clips whose retention period has ended (legal holds are kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be destroyed, change nothing"
        )
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dry_run"]:
            self.dry_run()
            return
        result = clips_purge_expired(batch_size=max(1, options["batch_size"]))
        self.stdout.write(f"destroyed {result.destroyed} clips ({result.files_removed} files removed)")

    def dry_run(self) -> None:
        count = 0
        for clip in clips_due_iter():
            count += 1
            if count <= DRY_RUN_LISTED:
                expires = timezone.localtime(clip.expires_at).strftime("%Y-%m-%d %H:%M")
                self.stdout.write(
                    f"  clip #{clip.pk} camera {clip.camera.code} expired {expires} {clip.file}"
                )
        if count > DRY_RUN_LISTED:
            self.stdout.write(f"  … and {count - DRY_RUN_LISTED} more")
        self.stdout.write(f"dry run: {count} clips would be destroyed; nothing was changed")
