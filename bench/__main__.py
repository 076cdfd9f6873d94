"""`python -m bench [section ...]`: run the chosen sections (all by default), then a summary.

Exit status: 0 when every target is met, 1 when one is missed, 2 for an unknown section.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import django

from bench.common import Figure, header

Section = tuple[str, Callable[[], list[Figure]]]


def sections() -> list[Section]:
    """The registry, in run order; later issues append theirs (intake, latency, relay, ...).

    Imported here rather than at the top because sections use models, which need
    django.setup() first.
    """
    from bench import instructions, intake, load, retention, screen, spatial, video

    return [
        ("spatial", spatial.run),
        ("intake", intake.run),
        ("instructions", instructions.run),
        ("screen", screen.run),
        ("video", video.run),
        ("retention", retention.run),
        ("load", load.run),
    ]


def parse_args(names: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="section", help=f"one of: {', '.join(names)}")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    return parser.parse_args()


def run_sections(chosen: list[Section]) -> list[Figure]:
    figures: list[Figure] = []
    for name, run in chosen:
        header(name)
        start = time.perf_counter()
        figures.extend(run())
        print(f"  ({name} took {time.perf_counter() - start:.0f} s)", flush=True)
    return figures


def print_summary(figures: list[Figure]) -> None:
    header("summary")
    rows = [("figure", "measured", "target", "")]
    for f in figures:
        verdict = {True: "PASS", False: "MISS", None: ""}[f.passed]
        rows.append((f.name, f.shown(), f.target_shown(), verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip())
    judged = [f for f in figures if f.passed is not None]
    met = sum(1 for f in judged if f.passed)
    print(f"\n  {met}/{len(judged)} targets met ({len(figures)} figures)")


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartcity.settings")
    django.setup()
    registry = sections()
    names = [name for name, _ in registry]
    args = parse_args(names)
    if args.list:
        print("\n".join(names))
        return 0
    unknown = [s for s in args.sections if s not in names]
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    chosen = [s for s in registry if not args.sections or s[0] in args.sections]
    figures = run_sections(chosen)
    print_summary(figures)
    return 1 if any(f.passed is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
