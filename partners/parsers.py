"""Request body parsers for the partner API: strict, because partners' bugs must not become ours."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


class StrictJSONParser(BaseParser):
    """JSON as RFC 8259 means it: UTF-8, no NaN/Infinity, no duplicate keys, bounded nesting.

    Python's json module accepts NaN and Infinity and silently keeps the last of two
    equal keys; either would let a malformed event through looking valid.
    """

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"body is not UTF-8 (byte {exc.start})") from exc
        try:
            return json.loads(text, parse_constant=reject_constant, object_pairs_hook=reject_duplicate_keys)
        except RecursionError as exc:
            raise ParseError("JSON is nested too deeply") from exc
        except ValueError as exc:
            raise ParseError(f"invalid JSON: {exc}") from exc


class CapXMLParser(BaseParser):
    """Hands the raw CAP document to partners.cap, which parses it with defusedxml."""

    media_type = "application/cap+xml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:  # type: ignore[override]  # raw bytes on purpose
        return stream.read() if stream is not None else b""
