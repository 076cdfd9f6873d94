"""Structured logs: every line can carry the id of the request it belongs to.

`RequestIdMiddleware` puts the id in a context variable; it follows the request into
worker threads (asgiref copies the context) and `RequestIdFilter` adds it to each record.
With LOG_FORMAT=json every line is one JSON object, ready for a log collector.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


# A share link's token is its whole secret: `/shared/<token>/` and `?share=<token>`.
SHARE_TOKEN = re.compile(r"(/shared/|[?&]share=)[A-Za-z0-9_-]{8,}")


def share_tokens_masked(text: str) -> str:
    return SHARE_TOKEN.sub(r"\1***", text)


class RequestIdFilter(logging.Filter):
    """Adds the request id, and masks share tokens (Django logs e.g. `Forbidden: /shared/<token>/`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        message = record.getMessage()
        masked = share_tokens_masked(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or None,
            "process": record.process,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
