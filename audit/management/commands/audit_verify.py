"""`python manage.py audit_verify`: exit 0 if the audit chain is intact, 1 naming the first bad entry."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.verify import audit_chain_verify


class Command(BaseCommand):
    help = "Check the hash chain of the audit log; exit non-zero naming the first bad entry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=5000, help="rows fetched per round trip")
        parser.add_argument("--progress", action="store_true", help="print a line every 100,000 entries")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        progress = self.print_progress if options["progress"] else None
        report = audit_chain_verify(chunk_size=max(1, options["chunk_size"]), progress=progress)
        elapsed = time.perf_counter() - started
        if report.intact:
            self.stdout.write(
                f"audit chain intact: {report.checked} entries in {elapsed:.1f} s; head {report.head_hash}"
            )
            return
        self.stderr.write(
            f"audit chain BROKEN at entry #{report.bad_entry_id}: {report.problem}. "
            f"{report.checked} entries before it are intact."
        )
        sys.exit(1)

    def print_progress(self, checked: int) -> None:
        self.stdout.write(f"  {checked} entries checked")
